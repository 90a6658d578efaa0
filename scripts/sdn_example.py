#!/usr/bin/env python3
"""Contact sheets of an SDN model folder, run through its exported ONNX graphs (the graphs the
runtime ships; models/sdn/eval.py's Model wrapper), with CenterFace finding the faces and the
sdn.json crop and blend ellipse pasting them back, as the runtime does:

  columns: original | key A | key B | restored with A | restored with a wrong key
  rows:    photos and clip frames (a window around each face)
  and an attribute sheet: each attribute at -2, -1, 0, +1, +2 under key A.

  deps/sdn-venv/bin/python scripts/sdn_example.py [--model DIR] [--variant V]

Writes, from the redistributable samples/ (public-domain astronaut photo and the clips made from it):
  docs/sdn_sheet_samples.png, docs/sdn_sheet_attributes.png
and, from ../shared (CelebA held-out photos via models/sdn/data, the shared clips; their terms keep
them out of the repository, so they go to the ignored models/sdn/runs/):
  models/sdn/runs/sheet_heldout_<model_id>.png, sheet_heldout_attributes_<model_id>.png,
  sheet_clips_<model_id>.png

Keys are fixed random 128-bit keys (A, B, wrong), not passwords: the Argon2id step that turns a
password into a key is the runtime's and changes nothing here. A restore uses the face squares of
the original detection (what the sidecar / SEI carries).

  scripts/sdn_example.py --cli [--variant V] [--model DIR --out FILE]
is the older figure through the faceveil CLI: docs/sdn_example[_V].png, the astronaut photo with
passwords A, B, restored, wrong password and smiling=2 (needs target/release/faceveil).
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDN = os.path.join(ROOT, "models", "sdn")
sys.path.insert(0, SDN)
BIN = os.path.join(ROOT, "target", "release", "faceveil")
SRC = os.path.join(ROOT, "samples", "astronaut.jpg")
BOX = (90, 0, 390, 300)  # the face and some context
TILE = 224


# ------------------------------------------------------------------------------------------------
# the runtime's steps in numpy: find, crop, anonymize / restore, paste back

def faces(cf, img, thr=0.5, min_side=40):
    dets, lms = cf(img, thr)
    keep = [i for i, d in enumerate(dets) if max(d[2] - d[0], d[3] - d[1]) >= min_side]
    return dets[keep], lms[keep]


def process(model, img, dets, lms, bits, att=None, restore=False):
    """Anonymize (or restore) every face of img (HxWx3 uint8) in place of a copy."""
    from centerface import crop, crop_params
    import cv2
    c = model.meta["crop"]
    S = model.S
    out = img.astype(np.float32).copy()
    h, w = img.shape[:2]
    for d, l in zip(dets, lms):
        cx, cy, side = crop_params(d, c["scale"], c["center_x"], c["center_y"])
        cr = crop(img, cx, cy, side, S)
        lm = np.stack([(l[0::2] - (cx - side / 2)) / side, (l[1::2] - (cy - side / 2)) / side], 1).reshape(1, -1).astype(np.float32)
        x = (cr.transpose(2, 0, 1)[None] / 127.5 - 1).astype(np.float32)
        a = None if att is None else np.asarray(att, np.float32)[None]
        y = (model.restore if restore else model.anonymize)(x, bits, a, lm)[0]
        y = (y.transpose(1, 2, 0) + 1) * 127.5
        # paste: image pixel (u,v) samples crop pixel j = (u - x0 + 0.5) * S / side - 0.5
        x0, y0 = cx - side / 2, cy - side / 2
        u0, v0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        u1, v1 = min(w, int(np.ceil(x0 + side)) + 1), min(h, int(np.ceil(y0 + side)) + 1)
        uu, vv = np.meshgrid(np.arange(u0, u1), np.arange(v0, v1))
        mx = ((uu - x0 + 0.5) * S / side - 0.5).astype(np.float32)
        my = ((vv - y0 + 0.5) * S / side - 0.5).astype(np.float32)
        yy = cv2.remap(y.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        mm = cv2.remap(model.mask.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
        reg = out[v0:v1, u0:u1]
        out[v0:v1, u0:u1] = mm * yy + (1 - mm) * reg
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def window(img, d, f=1.8, size=TILE):
    """A square window of f times the face box's longer side around its centre, as a tile."""
    from centerface import crop
    side = f * max(d[2] - d[0], d[3] - d[1])
    return np.clip(np.rint(crop(img, (d[0] + d[2]) / 2, (d[1] + d[3]) / 2, side, size)), 0, 255).astype(np.uint8)


def label(tile_row, texts, h=22):
    import cv2
    band = np.full((h, tile_row.shape[1], 3), 255, np.uint8)
    n = len(texts)
    wcol = tile_row.shape[1] // n
    for i, t in enumerate(texts):
        cv2.putText(band, t, (i * wcol + 4, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile_row], 0)


def sheet_rows(model, cf, items, keys):
    """items: (name, image); one row per face found: original | A | B | restored A | wrong."""
    A, B, W = keys
    rows = []
    for name, img in items:
        dets, lms = faces(cf, img)
        if not len(dets):
            print(f"no face in {name}")
            continue
        a = process(model, img, dets, lms, A)
        b = process(model, img, dets, lms, B)
        ra = process(model, a, dets, lms, A, restore=True)
        rw = process(model, a, dets, lms, W, restore=True)
        for d in dets:
            rows.append(np.concatenate([window(z, d) for z in (img, a, b, ra, rw)], 1))
    return rows


def attr_rows(model, cf, img, A, vals=(-2.0, -1.0, 0.0, 1.0, 2.0)):
    import cv2
    dets, lms = faces(cf, img)
    d = dets[int(np.argmax((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])))]
    lm = lms[int(np.argmax((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])))]
    rows = []
    for ai, an in enumerate(model.attributes):
        tiles = []
        for v in vals:
            att = np.zeros(len(model.attributes), np.float32)
            att[ai] = v
            t = window(process(model, img, d[None], lm[None], A, att), d, f=1.5, size=160)
            tiles.append(t)
        row = np.concatenate(tiles, 1)
        band = np.full((row.shape[0], 150, 3), 255, np.uint8)
        cv2.putText(band, an, (4, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([band, row], 1))
    sheet = np.concatenate(rows, 0)
    head = np.full((22, sheet.shape[1], 3), 255, np.uint8)
    for i, v in enumerate(vals):
        cv2.putText(head, f"{v:+.0f}", (150 + i * 160 + 70, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head, sheet], 0)


def clip_frame(path, t):
    import cv2
    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.set(cv2.CAP_PROP_POS_FRAMES, min(t, max(n - 1, 0)))
    ok, fr = cap.read()
    cap.release()
    return fr[:, :, ::-1].copy() if ok else None


def save(path, rows, model):
    import cv2
    grid = np.concatenate(rows, 0)
    grid = label(grid, [f"original ({model.meta['model_id']} {model.variant})", "key A", "key B", "restored with A", "wrong key"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, grid[:, :, ::-1])
    print(f"wrote {os.path.relpath(path, ROOT)}")


def sheets(args):
    import cv2
    from PIL import Image
    from centerface import CenterFace
    from eval import Model
    model = Model(args.model, args.variant)
    cf = CenterFace(threads=1)
    rng = np.random.RandomState(11)
    keys = [rng.randint(0, 2, model.K).astype(np.uint8) for _ in range(3)]
    mid = model.meta["model_id"]
    docs = os.path.join(ROOT, "docs")
    runs = os.path.join(SDN, "runs")
    # redistributable samples
    astro = np.asarray(Image.open(SRC).convert("RGB"))
    items = [("astronaut.jpg", astro)]
    for clip, t in (("faces_720p.mp4", 100), ("two_faces_640x360.mp4", 60)):
        fr = clip_frame(os.path.join(ROOT, "samples", clip), t)
        if fr is not None:
            items.append((clip, fr))
    save(os.path.join(docs, "sdn_sheet_samples.png"), sheet_rows(model, cf, items, keys), model)
    cv2.imwrite(os.path.join(docs, "sdn_sheet_attributes.png"), attr_rows(model, cf, astro, keys[0])[:, :, ::-1])
    print("wrote docs/sdn_sheet_attributes.png")
    # held-out photos and shared clips: not for the repository
    data = os.path.join(SDN, "data")
    if os.path.exists(os.path.join(data, "labels.npz")):
        lab = np.load(os.path.join(data, "labels.npz"))
        held = np.nonzero((lab["split"] == 1) & (lab["identity"] >= 0))[0]
        pick = held[np.random.RandomState(3).choice(len(held), args.photos, replace=False)]
        items = []
        for i in pick:
            s = np.load(os.path.join(data, f"shard_{int(lab['shard'][i]):03d}.npy"), mmap_mode="r")
            f = np.array(s[lab["index"][i]])
            items.append((str(lab["files"][i]), cv2.resize(f, (f.shape[1] * 3, f.shape[0] * 3), interpolation=cv2.INTER_CUBIC)))
        save(os.path.join(runs, f"sheet_heldout_{mid}.png"), sheet_rows(model, cf, items, keys), model)
        a = [attr_rows(model, cf, items[j][1], keys[0]) for j in range(min(2, len(items)))]
        cv2.imwrite(os.path.join(runs, f"sheet_heldout_attributes_{mid}.png"), np.concatenate(a, 1)[:, :, ::-1])
    clips = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "videos", "*.mp4")))
    items = [(os.path.basename(c), clip_frame(c, 90)) for c in clips]
    items = [it for it in items if it[1] is not None]
    if items:
        save(os.path.join(runs, f"sheet_clips_{mid}.png"), sheet_rows(model, cf, items, keys), model)


# ------------------------------------------------------------------------------------------------
# the older CLI figure

def cli(*args, password):
    env = dict(os.environ, FACEVEIL_PASSWORD=password)
    subprocess.run([BIN, *args], env=env, check=True, capture_output=True)


def cli_figure(args):
    from PIL import Image
    mo = ["--model", args.model] if args.model != SDN else []
    va = (["--variant", args.variant] if args.variant else []) + mo
    name = f"sdn_example_{args.variant}.png" if args.variant else "sdn_example.png"
    out_path = args.out or os.path.join(ROOT, "docs", name)
    with tempfile.TemporaryDirectory() as d:
        p = lambda name: os.path.join(d, name)  # noqa: E731
        cli("anonymize", SRC, "-o", p("a.png"), *va, password="password A")
        cli("anonymize", SRC, "-o", p("b.png"), *va, password="password B")
        cli("restore", p("a.png"), "-o", p("ra.png"), *mo, password="password A")
        cli("restore", p("a.png"), "-o", p("rw.png"), *mo, password="not the password")
        cli("anonymize", SRC, "-o", p("s.png"), "--attributes", "smiling=2", *va, password="password A")
        tiles = [Image.open(f).convert("RGB").crop(BOX) for f in
                 (SRC, p("a.png"), p("b.png"), p("ra.png"), p("rw.png"), p("s.png"))]
        w, h = tiles[0].size
        out = Image.new("RGB", (w * len(tiles), h))
        for i, t in enumerate(tiles):
            out.paste(t, (i * w, 0))
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        out.save(out_path)
    print(f"wrote {out_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SDN, help="model folder (default: models/sdn)")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--photos", type=int, default=8, help="held-out photos on the local sheet")
    ap.add_argument("--cli", action="store_true", help="the older astronaut figure through the faceveil CLI")
    ap.add_argument("--out", default=None, help="--cli only: default docs/sdn_example[_VARIANT].png")
    args = ap.parse_args()
    if args.cli:
        cli_figure(args)
    else:
        sheets(args)


if __name__ == "__main__":
    main()
