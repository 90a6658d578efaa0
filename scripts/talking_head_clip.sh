#!/usr/bin/env bash
# Makes a 720p30 talking-head clip, the kind of clip issue 14's frame budget is about (one face
# of about 200 px in a 1280 x 720 frame), from ../shared's video-call clip: the person, scaled to
# 360 x 640, in front of a still, blurred enlargement of that clip's ceiling. The face, its motion
# and its speech are real; only the framing is made. 6 s, x264 at CRF 18.
# Usage: scripts/talking_head_clip.sh [OUT]   (default out/talking_head_720p.mp4)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/../shared/data/videos/07_selfie_portrait_720x1280.mp4
out=${1:-$root/out/talking_head_720p.mp4}
[ -f "$src" ] || { echo "talking_head_clip: $src not found (../shared is not here)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
frames=180
# The background: the top 391 x 220 of the first frame (ceiling and lights, no face), blurred at
# a quarter size and scaled up, then held for the whole clip.
gst-launch-1.0 -q compositor name=mix background=black sink_1::xpos=460 sink_1::ypos=40 \
  ! video/x-raw,width=1280,height=720,framerate=30/1 ! identity eos-after=$((frames + 1)) ! videoconvert \
  ! x264enc pass=qual quantizer=18 speed-preset=medium ! mp4mux ! filesink location="$out" \
  filesrc location="$src" ! decodebin ! videoconvert ! videocrop left=164 right=165 bottom=1060 \
  ! videoscale ! video/x-raw,width=320,height=180 ! gaussianblur sigma=3 \
  ! videoscale ! video/x-raw,width=1280,height=720 ! imagefreeze num-buffers=$frames \
  ! video/x-raw,framerate=30/1 ! mix.sink_0 \
  filesrc location="$src" ! decodebin ! videoconvert ! videoscale ! video/x-raw,width=360,height=640 \
  ! videorate ! video/x-raw,framerate=30/1 ! mix.sink_1
echo "$out"
