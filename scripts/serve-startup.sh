#!/usr/bin/env bash
# What each extra camera costs `faceveil serve` to start: N file cameras in sdn mode (detector
# and SDN loaded), each reading samples/faces_720p.mp4 in real time and recording it. Prints, per
# N, the seconds from launch until every camera has anonymized its first frame (from the metrics
# endpoint), and the process's resident memory (VmRSS) 3 s later and at its peak (VmHWM).
# Usage: [FACEVEIL=BINARY] scripts/serve-startup.sh [N...]   (defaults: 1 2 3 4)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 3 4)
bin=${FACEVEIL:-$root/target/release/faceveil}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "startup measurement" > "$work/password"

echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cameras  first_frame_all_s  rss_mib  peak_rss_mib"
for n in "${counts[@]}"; do
  config="$work/serve-$n.toml"
  printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$port" > "$config"
  for i in $(seq 1 "$n"); do
    printf '\n[[camera]]\nname = "cam%s"\nsource = "%s"\nrealtime = true\nmode = "sdn"\npassword_file = "password"\nrecord = { dir = "rec-%s", segment_seconds = 10, keep = 3 }\n' \
      "$i" "$root/samples/faces_720p.mp4" "$n" >> "$config"
  done
  start=$(date +%s.%N)
  "$bin" serve "$config" 2> "$work/serve-$n.log" &
  pid=$!
  # Every camera has a nonzero frame counter.
  until [ "$(curl -sf "http://127.0.0.1:$port/metrics" | awk 'index($0, "faceveil_camera_frames_total{") == 1 && $2 > 0 { c++ } END { print c + 0 }')" = "$n" ]; do
    kill -0 "$pid" || { cat "$work/serve-$n.log" >&2; exit 1; }
    sleep 0.05
  done
  ready=$(date +%s.%N)
  sleep 3
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  awk -v n="$n" -v a="$start" -v b="$ready" -v r="$rss" -v h="$hwm" \
    'BEGIN { printf "%7d  %17.2f  %7.0f  %12.0f\n", n, b - a, r / 1024, h / 1024 }'
done
