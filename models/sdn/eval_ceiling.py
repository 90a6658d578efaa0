"""How far a surrogate drawn inside the blend ellipse can get from the original and from a second
surrogate, with dlib as the judge: the ceiling that issue 11's targets meet with this runtime.

    OMP_NUM_THREADS=2 deps/sdn-venv/bin/python models/sdn/eval_ceiling.py [--n 100] [--out models/sdn/runs/ceiling.json]

The same held-out faces, frames and blending as quick_judge.py (the stored 144 px frame, the
model's 128 crop blended in through sdn.json's ellipse, dlib's descriptor at the known box). Each
face gets two other held-out people as donors (d1, d2, never its own identity), and each row
below is made twice, once per donor (or per key), to measure:
  same   the surrogate (donor d1 / key 1) judged the original (dlib distance < 0.6)
  two    the two surrogates (d1 and d2 / keys 1 and 2) judged two people (distance >= 0.6)
  found  dlib's HOG detector finds the surrogate (d1 / key 1)
Rows:
  photo swap         the donor's own 128 crop, moved onto the face by the similarity of their
                     five landmarks, at full resolution: a perfect generator of other people
  photo swap, blur   the same, Gaussian-blurred (sigma 2 px of the 128 crop)
  face space, all    the donor's coordinates in all K dimensions of the face space, the detail
                     the face space misses removed inside the mask (alpha 0)
  face space, id     only the m identity coordinates taken from the donor (alpha 0)
  shipped rotation   the shipped map (numpy), two random keys
Nothing is fitted here.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quick_judge as qj  # noqa: E402
from centerface import blend_mask  # noqa: E402
from facespace import FaceSpace  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=HERE)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.time()
    lab, pick, frames, boxes, off = qj.load(args)
    meta = json.load(open(os.path.join(args.model_dir, "sdn.json")))
    N = len(pick)
    crops = frames[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1
    lms = lab["landmarks"][pick].astype(np.float64)
    ids = lab["identity"][pick]
    m = blend_mask(128, **meta["blend"])[..., None]

    J = qj.Judge()
    D0 = J.descs(frames, boxes)
    rng = np.random.RandomState(5)

    def donors():
        d = np.empty(N, int)
        for i in range(N):
            j = rng.randint(N)
            while ids[j] == ids[i]:
                j = rng.randint(N)
            d[i] = j
        return d

    d1, d2 = donors(), donors()

    def photo_swap(d, blur=0.0):
        out = crops.copy()
        for i in range(N):
            M, _ = cv2.estimateAffinePartial2D(lms[d[i]].reshape(5, 2) * 128, lms[i].reshape(5, 2) * 128)
            w = cv2.warpAffine(crops[d[i]].transpose(1, 2, 0).astype(np.float32), M, (128, 128), borderMode=cv2.BORDER_REFLECT)
            if blur:
                w = cv2.GaussianBlur(w, (0, 0), blur)
            out[i] = w.transpose(2, 0, 1)
        return out

    fs = FaceSpace.load(args.model_dir)
    u, rest = fs.split(crops, lms)
    z = rest["z"]
    r = (rest["v"] - fs.mu) - z @ fs.syn.T

    def face_space(z2):
        return rest["crops"] + fs.to_crop((z2 - z) @ fs.syn.T - fs.mask * r, lms)

    def ids_from(d):
        return z + (u[d] - u) @ fs.Q.T

    keys = np.where(np.random.RandomState(123).rand(2, 128) < 0.5, 1.0, -1.0)
    rows = [("photo swap", lambda k: photo_swap((d1, d2)[k])),
            ("photo swap, blur", lambda k: photo_swap((d1, d2)[k], 2.0)),
            ("face space, all", lambda k: face_space(z[(d1, d2)[k]])),
            ("face space, id", lambda k: face_space(ids_from((d1, d2)[k]))),
            ("shipped rotation", lambda k: fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))))]
    res = dict(n=N, identities=int(len(set(ids))), model=meta["model_id"], rows={})
    for name, make in rows:
        F1, F2 = qj.blend_crops(frames, make(0), m, off), qj.blend_crops(frames, make(1), m, off)
        E1, E2 = J.descs(F1, boxes), J.descs(F2, boxes)
        r_ = dict(same=float(np.mean(np.linalg.norm(E1 - D0, axis=1) < 0.6)),
                  two=float(np.mean(np.linalg.norm(E1 - E2, axis=1) >= 0.6)),
                  median_distance_of_the_two=float(np.median(np.linalg.norm(E1 - E2, axis=1))),
                  found=float(np.mean([J.found(F1[i], boxes[i]) for i in range(N)])))
        res["rows"][name] = r_
        print(f"{name:18s} same {r_['same']:.3f}  two {r_['two']:.3f}  median distance {r_['median_distance_of_the_two']:.3f}  "
              f"found {r_['found']:.3f}  ({time.time() - t0:.0f}s)", flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        json.dump(res, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
