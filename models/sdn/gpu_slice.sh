#!/bin/bash
# One training slice on the lent GPU host (see gpu_train.md), run from the repository root there.
# Unpacks the carried data parts once, then trains one or more runs side by side on the one GPU:
# the fast flow is small enough to leave an H200 mostly idle, so a second setting costs little
# more device time than one. Each run starts from INIT or resumes its own runs/<name>/ckpt.pt,
# and leaves under $OUT its output (<name>.log), its new log rows (<name>.csv) and a weights-only
# checkpoint (<name>.weights.pt: the flow in fp32, the classifier and discriminator in fp16, so
# that it comes back as one file under the tool's 16 MiB), and the flow (fp16) of each checkpoint
# this slice saved (<name>.flows.tar), to export and compare every step on real clips afterwards.
#   MINUTES=6.5 PARTS=/tmp/sdn_parts COMMON="--codec video" \
#     bash models/sdn/gpu_slice.sh "veil_a --w-id 4" "veil_b --w-id 6 --id-margin 0"
# Each argument is a run name followed by its own train.py arguments (no spaces inside values).
set -o pipefail
export PYTHONUNBUFFERED=1
MINUTES=${MINUTES:-6.5}
INIT=${INIT:-models/sdn/checkpoints/sdn_fast.pt}
DEVICE=${DEVICE:-cuda}
DATA=models/sdn/data
PARTS=${PARTS:-$DATA/parts}
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $DATA/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
test -f $DATA/labels.npz || python3 models/sdn/shards_jpeg.py unpack --parts "$PARTS" --data $DATA || exit 1
threads=$(( $(nproc) / $# ))
pids=()
for spec in "$@"; do
  read -r run args <<<"$spec"
  # The logs live outside the tree: every call copies the tree afresh, which would put the
  # repository's files back over the rows of the slices before
  # shellcheck disable=SC2086
  python3 models/sdn/train.py --variant fast --run "$run" --device "$DEVICE" --threads "$threads" \
    --init-from "$INIT" --minutes "$MINUTES" --mfn $DATA/aid/mobilefacenet_128d.onnx \
    --log "/tmp/$run.csv" --keep-flows "/tmp/flows/$run" $COMMON $args > "$OUT/$run.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for spec in "$@"; do
  read -r run _ <<<"$spec"
  cp "/tmp/$run.csv" "$OUT/$run.csv"
  # each slice brings back only the flows it saved: the tarred ones leave the host's folder
  (cd "/tmp/flows/$run" && tar cf "$OUT/$run.flows.tar" ./*.pt && rm -f ./*.pt) || status=1
  tail -3 "$OUT/$run.log"
  python3 - "$run" "$OUT/$run.weights.pt" <<'EOF' || status=1
import sys, torch
ck = torch.load(f"models/sdn/runs/{sys.argv[1]}/ckpt.pt", map_location="cpu", weights_only=False)
keep = ["flow", "step", "minutes", "variant", "ids", "contract", "run", "lineage"]
out = {k: ck[k] for k in keep}
out.update({k: {n: v.half() for n, v in ck[k].items()} for k in ("C", "D")})
torch.save(out, sys.argv[2])
print(sys.argv[1], "weights-only checkpoint: step", ck["step"], "minutes", round(ck["minutes"], 2))
EOF
done
ls -la "$OUT"
exit $status
