#!/usr/bin/env python3
"""How small a face one detection pass finds, by the face's width in the image the detector is given.

Usage: deps/sdn-venv/bin/python scripts/detect_recall.py [--photos DIR] [--sides 200,140,110,90,75,64] [--bin FACEVEIL]

The truth is what faceveil finds in each in-the-wild photo at its own size (at most 1280 px, one
pass), keeping faces of 40 px or more, which that pass is sure of. Each photo is then shrunk so
that its longer side is SIDE and searched again in one pass (--detect-size SIDE, so nothing is
shrunk further or tiled); a true face counts as found where a box overlaps it (IoU > 0.3) at its
shrunk place. The numbers behind SURE_FACE_WIDTH and SMALLEST_FACE_WIDTH (src/faces/detect/mod.rs).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def boxes(bin_path, folder, side):
    """faceveil's boxes for every photo of `folder`, searched in one pass at `side` px."""
    out = folder + ".json"
    subprocess.run([bin_path, "anonymize", folder, "-o", folder + "_out", "--mode", "blur",
                    "--detect-size", str(side), "--boxes-json", out], check=True, capture_output=True)
    with open(out) as f:
        return {os.path.basename(e["file"]): e["faces"] for e in json.load(f)}


def iou(a, b):
    w = max(0.0, min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"]))
    h = max(0.0, min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"]))
    inter = w * h
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter + 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", default=os.path.join(ROOT, "..", "shared", "data", "faces", "celeba_wild_scenes"))
    ap.add_argument("--sides", default="200,140,110,90,75,64")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "faceveil"))
    args = ap.parse_args()
    photos = sorted(glob.glob(os.path.join(args.photos, "*.jpg")))
    if not photos:
        sys.exit(f"no photos in {args.photos}: skipped")
    found = {}
    with tempfile.TemporaryDirectory() as work:
        whole = os.path.join(work, "whole")
        os.makedirs(whole)
        sizes = {}
        for p in photos:
            name = os.path.splitext(os.path.basename(p))[0] + ".png"
            img = Image.open(p).convert("RGB")
            sizes[name] = img.size
            img.save(os.path.join(whole, name))
        truth = boxes(args.bin, whole, max(max(s) for s in sizes.values()))
        for side in (int(s) for s in args.sides.split(",")):
            folder = os.path.join(work, f"side{side}")
            os.makedirs(folder)
            for name, (w, h) in sizes.items():
                k = side / max(w, h)
                Image.open(os.path.join(whole, name)).resize(
                    (max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR).save(os.path.join(folder, name))
            got = boxes(args.bin, folder, side)
            for name, faces in truth.items():
                k = side / max(sizes[name])
                for face in (f for f in faces if f["width"] >= 40):
                    shrunk = {key: face[key] * k for key in ("x", "y", "width", "height")}
                    width = int(shrunk["width"] // 2) * 2
                    hit = any(iou(shrunk, g) > 0.3 for g in got.get(name, []))
                    tally = found.setdefault(width, [0, 0])
                    tally[0] += hit
                    tally[1] += 1
    print(f"{len(photos)} photos of {args.photos}; faces by width at the detector (px), found of true:")
    for width in sorted(w for w in found if w <= 32):
        hit, n = found[width]
        print(f"  {width:3d}-{width + 1:3d} px: {hit:3d} of {n:3d} ({100 * hit / n:.0f}%)")


if __name__ == "__main__":
    main()
