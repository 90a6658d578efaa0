#!/usr/bin/env bash
# Total throughput of `faceveil serve` on N file cameras read as fast as possible (realtime =
# false: every frame, none dropped), each recording samples/faces_720p.mp4 (720p30, 180 frames,
# one face). The cameras run in one process, or are sharded by config over PROCESSES processes
# (camera i in process i mod P), as docs/SCALING.md shards them over machines. Prints the frames
# anonymized by all cameras over the seconds from launch until the last camera's file ended
# (start-up included), and the peak resident memory (VmHWM) of the processes summed.
# Usage: [PROCESSES=P] [THREADS=T] [FACEVEIL=BINARY] scripts/serve-throughput.sh [MODE] [N]
#   (defaults: sdn 2; P 1; THREADS: the config's `threads`, 0 = one per core)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-sdn}
n=${2:-2}
procs=${PROCESSES:-1}
bin=${FACEVEIL:-$root/target/release/faceveil}
[ -x "$bin" ] || { echo "build first: cargo build --release -p faceveil-cli" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
echo "throughput measurement" > "$work/password"
source scripts/serve-lib.sh

ports=()
for p in $(seq 0 $((procs - 1))); do
  ports+=("$(free_port)")
  config_head "${ports[$p]}" > "$work/serve-$p.toml"
done
for i in $(seq 0 $((n - 1))); do
  p=$((i % procs))
  camera "cam$i" "$root/samples/faces_720p.mp4" false "$mode" 1 "${THREADS:-0}" rec >> "$work/serve-$p.toml"
done

echo "mode=$mode cameras=$n processes=$procs threads=${THREADS:-0}; $(machine)"
start=$(date +%s.%N)
for p in $(seq 0 $((procs - 1))); do
  : > "$work/serve-$p.log"
  "$bin" serve "$work/serve-$p.toml" 2> "$work/serve-$p.log" &
  pids+=($!)
done
until [ "$(cat "$work"/serve-*.log | grep -c ': end of file')" -ge "$n" ]; do
  for pid in "${pids[@]}"; do kill -0 "$pid" || { cat "$work"/serve-*.log >&2; exit 1; }; done
  sleep 0.1
done
end=$(date +%s.%N)
frames=0
for port in "${ports[@]}"; do
  f=$(scrape "$port" | total frames_total)
  frames=$((frames + f))
done
peak=0
for pid in "${pids[@]}"; do peak=$((peak + $(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status"))); done
for pid in "${pids[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
pids=()
awk -v f="$frames" -v a="$start" -v b="$end" -v m="$peak" \
  'BEGIN { printf "frames %d in %.1f s: %.1f fps in total; peak memory %.0f MiB\n", f, b - a, f / (b - a), m / 1024 }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
