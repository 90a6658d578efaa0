"""Prepare: detect faces with CenterFace, crop them per the sdn.json contract, write uint8 shards.

    OMP_NUM_THREADS=1 deps/sdn-venv/bin/python models/sdn/prepare.py

For every image of ../shared/data/faces/manifest.csv (the celeba_wild_scenes photos are left for
end-to-end tests): CenterFace (threshold 0.5) on the whole image as the runtime does it, the
largest face, then a crop of STORE x STORE pixels (default 144) around the contract centre with
side = scale*max(bw,bh)*STORE/128, so that the central 128x128 of a stored crop is exactly the
runtime's crop (and fitting can jitter the box).

Writes to models/sdn/data/ (labels.npz last, through a temporary name, so a reader never sees a
half-written one):
  shard_XXX.npy  uint8 [n,STORE,STORE,3] RGB, each < 60 MiB
  labels.npz     files, source, identity (-1 none), split (0 fit, 1 held-out),
                 attrs [n,6] int8 in {-1,0,+1} (0 unknown) for ATTRIBUTES, box [n,5] (x0,y0,x1,y1,
                 score in image pixels), shard, index, store, attributes,
                 landmarks float32 [n,10]: CenterFace's 5 points (x,y of left eye, right eye,
                 nose, mouth left, mouth right, CenterFace's order) in the runtime's 128x128 crop,
                 normalised to 0..1 (0 = the crop's left/top edge, 1 = its right/bottom edge).
Held-out: HELDOUT_IDS CelebA identities (every k-th of the sorted list of identities with at
least 10 images, so each has several images) and 5% of UTKFace images (seeded); nothing of them
is fitted on.
"""
import argparse
import csv
import json
import os
import sys
import time
from collections import Counter

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from centerface import CenterFace, crop, crop_params  # noqa: E402

ATTRIBUTES = ["smiling", "mouth_slightly_open", "mustache", "eyeglasses", "male", "young"]
CELEBA_COLS = ["Smiling", "Mouth_Slightly_Open", "Mustache", "Eyeglasses", "Male", "Young"]


def load_contract():
    with open(os.path.join(HERE, "contract.json")) as f:
        return json.load(f)


def heldout_identities(rows, n):
    count = Counter(int(r["identity"]) for r in rows if r["identity"])
    ids = sorted(i for i, c in count.items() if c >= 10)
    step = max(1, len(ids) // n)
    return set(ids[::step][:n])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "faces"))
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--store", type=int, default=144)
    ap.add_argument("--heldout-ids", type=int, default=50)
    ap.add_argument("--limit", type=int, default=0, help="only N rows spread over the manifest (testing)")
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    c = load_contract()["crop"]
    os.makedirs(args.out, exist_ok=True)
    rows = list(csv.DictReader(open(os.path.join(args.faces, "manifest.csv"))))
    rows = [r for r in rows if r["source"] != "celeba_scene"]
    held = heldout_identities(rows, args.heldout_ids)
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    rng = np.random.RandomState(0)
    cf = CenterFace(threads=1)
    S = args.store
    per_shard = (60 * 2**20 - 1024) // (S * S * 3)
    buf, meta = [], []
    shard = 0
    t0 = time.time()
    nodet = 0

    def flush():
        nonlocal buf, shard
        if buf:
            np.save(os.path.join(args.out, f"shard_{shard:03d}.npy"), np.stack(buf))
            shard += 1
            buf = []

    for n, r in enumerate(rows):
        img = np.asarray(Image.open(os.path.join(args.faces, r["file"])).convert("RGB"))
        f = 1.0
        if max(img.shape[:2]) > 640:
            f = 640 / max(img.shape[:2])
            small = np.asarray(Image.fromarray(img).resize((round(img.shape[1] * f), round(img.shape[0] * f)), Image.BILINEAR))
        else:
            small = img
        dets, lms = cf(small, args.threshold)
        if len(dets) == 0:
            nodet += 1
            continue
        areas = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
        k = int(np.argmax(areas))
        box = dets[k].copy()
        box[:4] /= f
        lm = lms[k].astype(np.float64) / f
        cx, cy, side = crop_params(box, c["scale"], c["center_x"], c["center_y"])
        cr = crop(img, cx, cy, side * S / 128.0, S)
        buf.append(np.clip(np.rint(cr), 0, 255).astype(np.uint8))
        lmn = np.empty(10, np.float32)
        lmn[0::2] = (lm[0::2] - (cx - side / 2)) / side
        lmn[1::2] = (lm[1::2] - (cy - side / 2)) / side
        attrs = np.zeros(6, np.int8)
        if r["source"] == "celeba":
            for j, col in enumerate(CELEBA_COLS):
                if r[col]:
                    attrs[j] = int(r[col])
            ident = int(r["identity"])
            split = 1 if ident in held else 0
        else:  # UTKFace: age_gender_race_date.jpg, gender 0 male 1 female
            parts = os.path.basename(r["file"]).split("_")
            age, gender = int(parts[0]), int(parts[1])
            attrs[4] = 1 if gender == 0 else -1
            attrs[5] = 1 if age < 36 else -1  # CelebA "Young" is subjective; 36 is our cut
            ident = -1
            split = 1 if rng.rand() < 0.05 else 0
        meta.append((r["file"], r["source"], ident, split, attrs, box, shard, len(buf) - 1, lmn))
        if len(buf) == per_shard:
            flush()
        if n % 1000 == 0:
            print(f"{n}/{len(rows)} {time.time() - t0:.0f}s no-face {nodet}", flush=True)
    flush()
    tmp = os.path.join(args.out, "labels.tmp.npz")
    np.savez(tmp,
             files=np.array([m[0] for m in meta]), source=np.array([m[1] for m in meta]),
             identity=np.array([m[2] for m in meta], np.int64), split=np.array([m[3] for m in meta], np.int8),
             attrs=np.stack([m[4] for m in meta]), box=np.stack([m[5] for m in meta]).astype(np.float32),
             shard=np.array([m[6] for m in meta], np.int32), index=np.array([m[7] for m in meta], np.int32),
             landmarks=np.stack([m[8] for m in meta]).astype(np.float32),
             store=np.array(S), attributes=np.array(ATTRIBUTES))
    os.replace(tmp, os.path.join(args.out, "labels.npz"))
    sp = np.array([m[3] for m in meta])
    hid = {m[2] for m in meta if m[3] == 1 and m[2] >= 0}
    print(f"done {len(meta)} crops ({int(sp.sum())} held-out, {len(hid)} held-out identities), "
          f"{nodet} without a face, {shard} shards, {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
