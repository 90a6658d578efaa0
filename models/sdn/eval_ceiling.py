"""How far a surrogate drawn inside the blend ellipse can get from the original and from a second
surrogate, with dlib as the judge: the ceiling that issue 11's targets meet with this runtime.

    OMP_NUM_THREADS=2 deps/sdn-venv/bin/python models/sdn/eval_ceiling.py [--n 100] [--out models/sdn/runs/ceiling.json]
        [--morphs 3,6] [--detail-bank 1000] [--learned-detail RUN/detail.onnx]

The same held-out faces, frames and blending as quick_judge.py (the stored 144 px frame, the
model's 128 crop blended in through sdn.json's ellipse, dlib's descriptor at the known box). Each
face gets two other held-out people as donors (d1, d2, never its own identity), and each row
below is made twice, once per donor (or per key), to measure:
  same   the surrogate (donor d1 / key 1) judged the original (dlib distance < 0.6)
  two    the two surrogates (d1 and d2 / keys 1 and 2) judged two people (distance >= 0.6)
  found  dlib's HOG detector finds the surrogate (d1 / key 1)
Rows:
  black fill         no face at all: the ellipse painted black (the runtime's `solid`), the
                     original's hair, outline and background around it, the same for both
                     keys: the judge's floor for "same" with the surroundings kept
  strong blur        the original's own crop blurred (Gaussian, sigma 8 px of the 128 crop)
  mean face          the face space's mean face in the original's pose, light and tone left
                     as the face space's low coordinates have them (all coordinates 0)
  photo swap         the donor's own 128 crop, moved onto the face by the similarity of their
                     five landmarks, at full resolution: a perfect generator of other people
  photo swap, blur   the same, Gaussian-blurred (sigma 2 px of the 128 crop)
  face space, all    the donor's coordinates in all K dimensions of the face space, the detail
                     the face space misses removed inside the mask (alpha 0)
  face space, id     only the m identity coordinates taken from the donor (alpha 0)
  shipped rotation   the shipped map (numpy), two random keys
  low band only      the shipped map's surrogate reduced to its low band (Gaussian, sigma 2 px
                     of the 128 crop)
  + example detail   the row's picture reduced to that low band and given full-resolution
                     detail patch by patch from --detail-bank fitting crops (example_detail.py's
                     Bank: example-based super-resolution, nothing trained); "keyed": each key
                     searches its own 50 faces of the bank. For these rows also
  donor              the surrogate judged the bank face that gave it most patches.
  + learned detail   the row's picture reduced to example_detail.Split's low band (the 4 x 4
                     projector) and given the detail of --learned-detail (train_sr.py's
                     detail.onnx) with noise keyed by the row's key
  morph of K         K faces of a bank of frontal fitting crops (training identities and
                     UTKFace, each of another identity), each moved onto the face by the
                     similarity of their five landmarks, warped to their mean shape by dense
                     optical flow (OpenCV DIS), averaged at full resolution, the original's Lab
                     lightness spread and mean and its a*, b* means matched over its central
                     face: sharp faces made of real people, two draws of donors for two keys.
                     For these rows also
  donor              the surrogate judged one of its own K donors (dlib distance < 0.6).
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
import example_detail  # noqa: E402
from facespace import FaceSpace  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=HERE)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default=None)
    ap.add_argument("--bank", type=int, default=600, help="frontal fitting crops the morphs draw from")
    ap.add_argument("--morphs", default="3,6", help="donors per morph, one row each ('' for none)")
    ap.add_argument("--detail-bank", type=int, default=1000, help="fitting crops the example detail draws from (0: no such rows)")
    ap.add_argument("--learned-detail", default=None, metavar="ONNX",
                    help="also rows with train_sr.py's detail (its 4 x 4 projector's low band, keyed noise)")
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
    def blurred(sigma):
        return np.stack([cv2.GaussianBlur(c.transpose(1, 2, 0), (0, 0), sigma).transpose(2, 0, 1) for c in crops])

    rows = [("black fill", lambda k: -np.ones_like(crops)),
            ("strong blur", lambda k: blurred(8.0)),
            ("mean face", lambda k: face_space(np.zeros_like(z))),
            ("photo swap", lambda k: photo_swap((d1, d2)[k])),
            ("photo swap, blur", lambda k: photo_swap((d1, d2)[k], 2.0)),
            ("face space, all", lambda k: face_space(z[(d1, d2)[k]])),
            ("face space, id", lambda k: face_space(ids_from((d1, d2)[k]))),
            ("shipped rotation", lambda k: fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))))]
    # Each row's donors under the first key, where the row has donors of its own (from the bank).
    donors_of = {}
    tops = {}  # the example-detail rows' main donors under the first key
    if args.detail_bank:
        low = example_detail.gaussian_low(2.0)
        ex, ex_index, ex_frames = example_detail.Bank.from_data(args.data, lab, off, low, n=args.detail_bank)
        ex_descs = J.descs(ex_frames, [qj.known_box(lab["box"][i], int(lab["store"])) for i in ex_index])
        subsets = [np.tile(np.random.RandomState(70 + k).choice(args.detail_bank, 50, replace=False), (N, 1)) for k in (0, 1)]

        def detailed(name, make, keyed):
            def row(k):
                lo = low(make(k))
                detail, top = ex.detail(lo, subsets[k] if keyed else None)
                if k == 0:
                    tops[name] = top
                return lo + detail
            rows.append((name, row))
        detailed("face space, all + example detail", lambda k: face_space(z[(d1, d2)[k]]), False)
        detailed("face space, all + keyed example detail", lambda k: face_space(z[(d1, d2)[k]]), True)
        rows.append(("shipped rotation, low band only", lambda k: low(fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))))))
        detailed("shipped rotation + example detail", lambda k: fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))), False)
        detailed("shipped rotation + keyed example detail", lambda k: fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))), True)
    if args.learned_detail:
        split = example_detail.Split()
        learned = example_detail.LearnedDetail(args.learned_detail)

        def with_learned(make):
            def row(k):
                lo = split.low(make(k))
                return lo + learned.keyed(lo, np.tile(keys[k], (N, 1)))
            return row
        rows.append(("face space, all + learned detail", with_learned(lambda k: face_space(z[(d1, d2)[k]]))))
        rows.append(("shipped rotation, 4 x 4 low band only", lambda k: split.low(fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))))))
        rows.append(("shipped rotation + learned detail", with_learned(lambda k: fs.anonymize(crops, lms, np.tile(keys[k], (N, 1))))))
    counts = [int(c) for c in args.morphs.split(",") if c.strip()]
    if counts:
        bank = Bank(args, lab, off, m)
        bank_descs = J.descs(bank.frames, bank.boxes)
        for count in counts:
            draws = [bank.draw(lab, pick, count, seed) for seed in (1, 2)]
            name = f"morph of {count}"
            rows.append((name, lambda k, draws=draws: np.stack(
                [bank.morph(crops[i], lms[i], draws[k][i]) for i in range(N)])))
            donors_of[name] = draws[0]
    res = dict(n=N, identities=int(len(set(ids))), model=meta["model_id"], rows={})
    for name, make in rows:
        F1, F2 = qj.blend_crops(frames, make(0), m, off), qj.blend_crops(frames, make(1), m, off)
        E1, E2 = J.descs(F1, boxes), J.descs(F2, boxes)
        r_ = dict(same=float(np.mean(np.linalg.norm(E1 - D0, axis=1) < 0.6)),
                  two=float(np.mean(np.linalg.norm(E1 - E2, axis=1) >= 0.6)),
                  median_distance_of_the_two=float(np.median(np.linalg.norm(E1 - E2, axis=1))),
                  found=float(np.mean([J.found(F1[i], boxes[i]) for i in range(N)])))
        if name in tops:
            r_["donor"] = float(np.mean(np.linalg.norm(ex_descs[tops[name]] - E1, axis=1) < 0.6))
        if name in donors_of:
            draw = donors_of[name]
            r_["donor"] = float(np.mean([np.linalg.norm(bank_descs[draw[i]] - E1[i], axis=1).min() < 0.6 for i in range(N)]))
        res["rows"][name] = r_
        donor = f"  donor {r_['donor']:.3f}" if "donor" in r_ else ""
        print(f"{name:18s} same {r_['same']:.3f}  two {r_['two']:.3f}  median distance {r_['median_distance_of_the_two']:.3f}  "
              f"found {r_['found']:.3f}{donor}  ({time.time() - t0:.0f}s)", flush=True)
    res["seconds"] = round(time.time() - t0, 1)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        json.dump(res, open(args.out, "w"), indent=1)


class Bank:
    """Frontal fitting crops (training split: training identities and UTKFace) the morphs draw
    their donors from, and how a morph is made of them."""

    def __init__(self, args, lab, off, mask):
        rng = np.random.RandomState(11)
        fit = np.nonzero(lab["split"] == 0)[0]
        L = lab["landmarks"][fit].reshape(-1, 5, 2)
        eyes = L[:, 1] - L[:, 0]
        yaw = (L[:, 2, 0] - 0.5 * (L[:, 0, 0] + L[:, 1, 0])) / np.linalg.norm(eyes, axis=1)
        roll = np.abs(eyes[:, 1] / eyes[:, 0])
        frontal = fit[(np.abs(yaw) < 0.12) & (roll < 0.12)]
        rng.shuffle(frontal)
        self.index = frontal[:args.bank]
        self.frames = qj.stored_frames(args.data, lab, self.index)
        self.crops = self.frames[:, off:off + 128, off:off + 128].astype(np.float32)
        self.lms = lab["landmarks"][self.index].astype(np.float64).reshape(-1, 5, 2) * 128
        self.boxes = np.array([qj.known_box(lab["box"][i], int(lab["store"])) for i in self.index])
        # A person: the CelebA identity, or the image itself for UTKFace's unnamed faces.
        self.person = np.where(lab["identity"][self.index] >= 0, lab["identity"][self.index], -1 - np.arange(len(self.index)))
        self.central = mask[..., 0] > 0.5
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.grid = np.meshgrid(np.arange(128, dtype=np.float32), np.arange(128, dtype=np.float32))

    def draw(self, lab, pick, count, seed):
        """`count` donors for each face, each of another person than the face and each other."""
        rng = np.random.RandomState(seed)
        out = []
        for i in pick:
            taken, donors = {lab["identity"][i]}, []
            while len(donors) < count:
                d = rng.randint(len(self.index))
                if self.person[d] not in taken:
                    taken.add(self.person[d])
                    donors.append(d)
            out.append(donors)
        return np.array(out)

    def morph(self, crop, lms, donors):
        """The donors' mean face in the face's pose (a 128 crop, -1..1, channels first)."""
        moved = np.stack([cv2.warpAffine(self.crops[d], cv2.estimateAffinePartial2D(self.lms[d], lms.reshape(5, 2) * 128)[0], (128, 128),
                                         borderMode=cv2.BORDER_REFLECT) for d in donors])
        grey = lambda im: cv2.cvtColor(im.astype(np.uint8), cv2.COLOR_RGB2GRAY)  # noqa: E731
        mean = grey(moved.mean(0))
        flows = np.stack([self.flow.calc(mean, grey(im), None) for im in moved])
        shift = flows - flows.mean(0)
        gx, gy = self.grid
        warped = [cv2.remap(im, gx + f[..., 0], gy + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                  for im, f in zip(moved, shift)]
        out = to_lab(np.mean(warped, 0))
        target = to_lab((crop.transpose(1, 2, 0) + 1) * 127.5)
        c = self.central
        for ch in range(3):
            spread = target[..., ch][c].std() / (out[..., ch][c].std() + 1e-3) if ch == 0 else 1.0
            out[..., ch] = (out[..., ch] - out[..., ch][c].mean()) * spread + target[..., ch][c].mean()
        rgb = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float64)
        return rgb.transpose(2, 0, 1) / 127.5 - 1


def to_lab(rgb):
    return cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)


if __name__ == "__main__":
    main()
