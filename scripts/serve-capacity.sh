#!/usr/bin/env bash
# How many cameras one `faceveil serve` keeps in real time. N cameras, each recorded to 10-second
# segments, show a 42-second clip made of CLIP (default samples/faces_720p.mp4, two faces) looped
# seven times and scaled to FORMAT (default 1280x720@30). Prints, per N, the frames each camera
# anonymized per second between seconds 8 and 28 (from the metrics endpoint) and the share dropped.
#   SOURCE=file (default): file cameras with realtime = true: read at the clip's rate, frames that
#     cannot be processed in time dropped, as from a live camera;
#   SOURCE=rtsp: network cameras, rtsp://127.0.0.1/camI from a local server that sends the
#     encoded clip as it is (cli/examples/rtsp_clip_server: no decoding, no encoding), each
#     camera its own play of it.
# Usage: [SOURCE=file|rtsp] [FORMAT=WxH@FPS] [CLIP=PATH] [THREADS=T] [FACEVEIL=BINARY]
#        scripts/serve-capacity.sh [MODE] [DETECT_INTERVAL] [N...]   (defaults: blur 1 1 2 3)
# THREADS: the CPU threads of each camera's models (the config's `threads`; 0, the default: half the cores each).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/serve-lib.sh
mode=${1:-blur}
interval=${2:-1}
shift $(($# < 2 ? $# : 2))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 3)
source_kind=${SOURCE:-file}
format=${FORMAT:-1280x720@30}
clip_in=$(realpath "${CLIP:-samples/faces_720p.mp4}")
[[ $format =~ ^([0-9]+)x([0-9]+)@([0-9]+)$ ]] || { echo "FORMAT is WIDTHxHEIGHT@FPS, e.g. 1920x1080@30" >&2; exit 1; }
width=${BASH_REMATCH[1]} height=${BASH_REMATCH[2]} fps=${BASH_REMATCH[3]}
bin=${FACEVEIL:-$root/target/release/faceveil}
[ -x "$bin" ] || { echo "build first: cargo build --release -p faceveil-cli" >&2; exit 1; }
cameras_bin=$root/target/release/examples/rtsp_clip_server
if [ "$source_kind" = rtsp ] && [ ! -x "$cameras_bin" ]; then
  echo "build the camera server first: cargo build --release -p faceveil-cli --example rtsp_clip_server" >&2
  exit 1
fi
work=$(mktemp -d)
pid=
cameras_pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$cameras_pid" ] && kill "$cameras_pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(free_port)

clip="$work/clip.mp4"
# The clip is decoded and scaled once, to raw frames, and the seven parts are read from those:
# seven decoders linked to concat as their pads appear lost the race now and then (the build
# failed or hung in 3 of 4 tries on 2026-12-02), while raw parts link before the start.
raw="$work/part.yuv"
gst-launch-1.0 -q filesrc location="$clip_in" ! decodebin ! videoconvert ! videoscale ! videorate \
  ! "video/x-raw,format=I420,width=$width,height=$height,framerate=$fps/1" ! filesink location="$raw"
parts=()
for _ in 1 2 3 4 5 6 7; do
  parts+=(filesrc location="$raw" ! rawvideoparse format=i420 width="$width" height="$height" framerate="$fps/1" ! c.)
done
# identity single-segment: each part starts its timestamps at 0 again inside concat's segments;
# without it x264enc writes the later parts' frames with broken timestamps, and a camera in real
# time gets each later part as a burst (and drops most of it).
gst-launch-1.0 -q concat name=c ! identity single-segment=true \
  ! x264enc speed-preset=veryfast key-int-max="$fps" ! h264parse ! mp4mux ! filesink location="$clip" "${parts[@]}"
rm -f "$raw"
echo "capacity measurement" > "$work/password"
if [ "$source_kind" = rtsp ]; then
  cameras_port=$(free_port)
  "$cameras_bin" "$clip" "$cameras_port" "$(printf '%s\n' "${counts[@]}" | sort -n | tail -1)" 2> "$work/cameras.log" &
  cameras_pid=$!
fi

echo "mode=$mode detect_interval=$interval threads=${THREADS:-0} source=$source_kind ${width}x${height}@${fps} from $(basename "$clip_in"); $(machine)"
echo "cameras  fps/camera  fps_total  dropped"
for n in "${counts[@]}"; do
  config="$work/serve-$n.toml"
  config_head "$port" > "$config"
  for i in $(seq 1 "$n"); do
    if [ "$source_kind" = rtsp ]; then
      camera "cam$i" "rtsp://127.0.0.1:$cameras_port/cam$i" false "$mode" "$interval" "${THREADS:-0}" "rec-$n" >> "$config"
    else
      camera "cam$i" "$clip" true "$mode" "$interval" "${THREADS:-0}" "rec-$n" >> "$config"
    fi
  done
  "$bin" serve "$config" 2> "$work/serve-$n.log" &
  pid=$!
  sleep 8
  a=$(scrape "$port")
  sleep 20
  b=$(scrape "$port")
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  frames=$(($(total frames_total <<< "$b") - $(total frames_total <<< "$a")))
  dropped=$(($(total frames_dropped_total <<< "$b") - $(total frames_dropped_total <<< "$a")))
  awk -v n="$n" -v f="$frames" -v d="$dropped" \
    'BEGIN { printf "%7d  %10.1f  %9.1f  %6.1f%%\n", n, f / 20 / n, f / 20, 100 * d / (f + d > 0 ? f + d : 1) }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
