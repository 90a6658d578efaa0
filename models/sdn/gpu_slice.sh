#!/bin/bash
# One training slice on the lent GPU host (see gpu_train.md), run from the repository root there:
# unpack the carried data part, train from the shipped checkpoint (or resume the run), and leave
# what must come back under $OUT: the log, the slice's output and a weights-only checkpoint in
# pieces of at most 15 MiB (the device tool returns 8 files of 16 MiB at most).
#   RUN=fast_gpu MINUTES=6.5 bash models/sdn/gpu_slice.sh [extra train.py arguments]
set -o pipefail
export PYTHONUNBUFFERED=1
RUN=${RUN:-fast_gpu}
MINUTES=${MINUTES:-6.5}
DATA=models/sdn/data
# The log lives outside the tree: every call copies the tree afresh, which would put the
# repository's train_log.csv back over the rows of the slices before
LOG=/tmp/sdn_train_log.csv
test -f $LOG || cp models/sdn/train_log.csv $LOG
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $DATA/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
test -f $DATA/labels.npz || python3 models/sdn/shards_jpeg.py unpack --parts $DATA/parts --data $DATA || exit 1
python3 models/sdn/train.py --variant fast --run "$RUN" --device cuda --threads 8 \
  --init-from models/sdn/checkpoints/sdn_fast.pt --minutes "$MINUTES" \
  --mfn $DATA/aid/mobilefacenet_128d.onnx --log $LOG "$@" 2>&1 | tee "$OUT/slice.log"
status=$?
cp $LOG "$OUT/train_log.csv"
python3 - "$RUN" <<'EOF' || exit 1
import sys, torch
ck = torch.load(f"models/sdn/runs/{sys.argv[1]}/ckpt.pt", map_location="cpu", weights_only=False)
keep = ["flow", "C", "D", "step", "minutes", "variant", "ids", "contract", "run", "lineage"]
torch.save({k: ck[k] for k in keep}, "/tmp/weights.pt")
print("weights-only checkpoint: step", ck["step"], "minutes", round(ck["minutes"], 2))
EOF
split -b 15M /tmp/weights.pt "$OUT/weights.pt.part."
ls -la "$OUT"
exit $status
