#!/usr/bin/env bash
# The stage benchmarks (CenterFace detection, SDN batches) on a GPU machine that has CUDA 13 and
# cuDNN 9 but no GStreamer, no Rust and no network, through ONNX Runtime's CUDA provider; then the
# same benchmarks on that machine's CPU. Writes $OUT/gpu_stages.txt (or ./gpu_stages.txt), which
# goes into docs/data/gpu_stages_<gpu>.txt; scripts/bench.sh puts that file in docs/PERFORMANCE.md.
#
# Before, on the development machine:
#   bash ../shared/tools/gpu-ort/prepare.sh               # .gpu/p0..p2 and .gpu/rest (see its README)
#   cargo bench --bench stages --no-run                    # then: mkdir -p .gpu/bin && strip -o .gpu/bin/stages target/release/deps/stages-<hash>
#   deps/sdn-venv/bin/python scripts/fp16_graphs.py .gpu/fp16   # optional: a float16 pass as well (see its header)
# On the GPU machine: each .gpu/pN copied to /tmp/ortgpu in its own transfer, then, from the
# project root with .gpu/rest, .gpu/bin and deps/centerface/centerface.onnx beside it:
#   bash scripts/gpu_stages.sh
set -uo pipefail
out=${OUT:-.}/gpu_stages.txt
eval "$(bash .gpu/rest/assemble.sh)" || { echo "assembling ONNX Runtime's CUDA build failed" >&2; exit 1; }
# The CUDA provider's libraries (cuDNN, cuBLAS) live where the machine's Python packages put them.
for lib in $(ldd /tmp/ortgpu/libonnxruntime_providers_cuda.so | awk '/not found/{print $1}' | sort -u); do
  d=$(find /usr /opt -name "$lib" 2>/dev/null | head -1)
  [ -n "$d" ] && export LD_LIBRARY_PATH=$(dirname "$d"):$LD_LIBRARY_PATH || echo "missing $lib" >&2
done
export FACEVEIL_CENTERFACE=$PWD/deps/centerface/centerface.onnx FACEVEIL_MODEL=$PWD/models/sdn
{
  echo "# scripts/gpu_stages.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), $(nproc) CPU cores"
  echo "# No I/O binding: each call copies its input from and its output to host memory."
  passes="cuda cpu"
  [ -d .gpu/fp16 ] && passes="cuda cuda-fp16 cpu"
  for p in $passes; do
    if [ "$p" = cuda-fp16 ]; then  # the float16 graphs of scripts/fp16_graphs.py, float32 in and out
      echo "== provider cuda, float16 graphs (scripts/fp16_graphs.py)"
      env=(FACEVEIL_MODEL=$PWD/.gpu/fp16/sdn FACEVEIL_CENTERFACE=$PWD/.gpu/fp16/centerface.onnx FACEVEIL_BENCH_PROVIDER=cuda)
    else
      echo "== provider $p, float32"
      env=(FACEVEIL_BENCH_PROVIDER=$p)
    fi
    env "${env[@]}" timeout 300 .gpu/bin/stages --bench "detect centerface|sdn batch" \
      --warm-up-time 2 --measurement-time 4 2>&1 | grep -E "time:|^(detect|sdn)|rror|panic"
  done
} | tee "$out"
