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
source scripts/serve-lib.sh
port=$(free_port)
echo "startup measurement" > "$work/password"

machine
echo "cameras  first_frame_all_s  rss_mib  peak_rss_mib"
for n in "${counts[@]}"; do
  config="$work/serve-$n.toml"
  config_head "$port" > "$config"
  for i in $(seq 1 "$n"); do
    camera "cam$i" "$root/samples/faces_720p.mp4" true sdn 1 0 "rec-$n" >> "$config"
  done
  start=$(date +%s.%N)
  "$bin" serve "$config" 2> "$work/serve-$n.log" &
  pid=$!
  # Every camera has a nonzero frame counter.
  until [ "$(scrape "$port" | awk 'index($0, "faceveil_camera_frames_total{") == 1 && $2 > 0 { c++ } END { print c + 0 }')" = "$n" ]; do
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
