#!/usr/bin/env bash
# How many 720p30 cameras one `faceveil serve` keeps in real time: N file cameras with
# realtime = true (read at their frame rate, frames that cannot be processed in time dropped, as
# from a live camera), each recorded to 10-second segments, on a 30-second clip made of
# samples/faces_720p.mp4 (one face) five times. Prints, per N, the frames each camera anonymized
# per second between seconds 8 and 28 (from the metrics endpoint) and the share dropped.
# Usage: [THREADS=T] [FACEVEIL=BINARY] scripts/serve-capacity.sh [MODE] [DETECT_INTERVAL] [N...]   (defaults: blur 1 1 2 3)
# THREADS: the CPU threads of each camera's models (the config's `threads`; 0, the default: one per core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=${1:-blur}
interval=${2:-1}
shift $(($# < 2 ? $# : 2))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 3)
bin=${FACEVEIL:-$root/target/release/faceveil}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

clip="$work/faces_720p_30s.mp4"
parts=()
for _ in 1 2 3 4 5; do parts+=(filesrc location=samples/faces_720p.mp4 ! decodebin ! c.); done
gst-launch-1.0 -q concat name=c ! videoconvert ! x264enc speed-preset=veryfast key-int-max=30 ! mp4mux \
  ! filesink location="$clip" "${parts[@]}"
echo "capacity measurement" > "$work/password"

scrape() { curl -sf "http://127.0.0.1:$port/metrics"; }
# The sum of one counter over all cameras.
total() { awk -v m="faceveil_camera_$1{" 'index($0, m) == 1 { s += $2 } END { print s + 0 }'; }

echo "mode=$mode detect_interval=$interval threads=${THREADS:-0} clip=720p30, 1 face; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "cameras  fps/camera  fps_total  dropped"
for n in "${counts[@]}"; do
  config="$work/serve-$n.toml"
  printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$port" > "$config"
  for i in $(seq 1 "$n"); do
    printf '\n[[camera]]\nname = "cam%s"\nsource = "%s"\nrealtime = true\nmode = "%s"\ndetect_interval = %s\nthreads = %s\nrecord = { dir = "rec-%s", segment_seconds = 10, keep = 3 }\n' \
      "$i" "$clip" "$mode" "$interval" "${THREADS:-0}" "$n" >> "$config"
    [ "$mode" = sdn ] && echo 'password_file = "password"' >> "$config"
  done
  "$bin" serve "$config" 2> "$work/serve-$n.log" &
  pid=$!
  sleep 8
  a=$(scrape)
  sleep 20
  b=$(scrape)
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  frames=$(($(total frames_total <<< "$b") - $(total frames_total <<< "$a")))
  dropped=$(($(total frames_dropped_total <<< "$b") - $(total frames_dropped_total <<< "$a")))
  awk -v n="$n" -v f="$frames" -v d="$dropped" \
    'BEGIN { printf "%7d  %10.1f  %9.1f  %6.1f%%\n", n, f / 20 / n, f / 20, 100 * d / (f + d > 0 ? f + d : 1) }'
done
