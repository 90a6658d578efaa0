"""Compare SDN model folders on real clips through the CLI: anonymize (x264 CRF 23, SEI crops),
restore with the right password, face-region PSNR of the restore against the original.

  nice -n 10 deps/sdn-venv/bin/python scripts/compare_models.py --model shipped=models/sdn \
      --model cand=/tmp/cand --runs 3 samples/faces_720p.mp4 samples/two_faces_640x360.mp4

Each folder holds an exported model (sdn.json, the graphs it names); the CLI is pointed at it
through FACEVEIL_MODEL and anonymizes with its default variant.

Every anonymize draws a new random salt, so every run uses another key, and the restore quality
depends on the key (docs/ROUNDTRIP.md): each model gets --runs runs a clip, the runs of all models
interleaved so that load on the machine hits them alike, and the table gives the mean and the
spread. The measure is scripts/roundtrip.py's (the inner region of each recorded crop, PSNR
over RGB).
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip as rt  # noqa: E402


def restore_psnr(orig, restored, sidecar, blend):
    _, crops_by_frame = rt.read_sidecar(sidecar)
    a, b = cv2.VideoCapture(orig), cv2.VideoCapture(restored)
    vals, n = [], 0
    while True:
        ok1, f1 = a.read()
        ok2, f2 = b.read()
        if not (ok1 and ok2):
            break
        H, W = f1.shape[:2]
        for crop in crops_by_frame.get(n, []):
            reg = rt.inner_region(crop, blend, W, H)
            if reg is not None:
                vals.append(rt.region_metrics(f1[:, :, ::-1], f2[:, :, ::-1], reg)[0])
        n += 1
    return float(np.mean(vals)), len(vals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--model", action="append", required=True, help="NAME=FOLDER (holding sdn.json)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(rt.ROOT, "target", "release", "faceveil"))
    ap.add_argument("--out", default=os.path.join(rt.ROOT, "out", "compare"))
    ap.add_argument("--json", default=None, help="write all runs here")
    args = ap.parse_args()
    models = [m.split("=", 1) for m in args.model]
    blends = {}
    for name, folder in models:
        with open(os.path.join(folder, "sdn.json")) as f:
            blends[name] = json.load(f)["blend"]
    res = {name: {} for name, _ in models}
    t0 = time.monotonic()
    for clip in args.clips:
        cname = os.path.splitext(os.path.basename(clip))[0]
        for r in range(args.runs):
            for name, folder in models:
                d = os.path.join(args.out, name, cname)
                os.makedirs(d, exist_ok=True)
                anon, right = os.path.join(d, f"anon{r}.mp4"), os.path.join(d, f"right{r}.mp4")
                os.environ["FACEVEIL_MODEL"] = os.path.abspath(folder)
                rt.run_cli(args.bin, ["anonymize", clip, "-o", anon], rt.PW_A, os.path.join(d, f"anonymize{r}.log"))
                rt.run_cli(args.bin, ["restore", anon, "-o", right], rt.PW_A, os.path.join(d, f"restore{r}.log"))
                p, n = restore_psnr(clip, right, anon + ".faceveil", blends[name])
                res[name].setdefault(cname, []).append(p)
                print(f"{time.monotonic() - t0:6.0f}s {name:>10} {cname:<32} run {r}: {p:.2f} dB over {n} face-frames",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print("\n| clip | " + " | ".join(name for name, _ in models) + " |")
    print("|---|" + "---|" * len(models))
    for clip in args.clips:
        cname = os.path.splitext(os.path.basename(clip))[0]
        cells = [f"{np.mean(res[n][cname]):.2f} ({min(res[n][cname]):.2f}-{max(res[n][cname]):.2f})" for n, _ in models]
        print(f"| {cname} | " + " | ".join(cells) + " |")
    means = [np.mean([np.mean(v) for v in res[n].values()]) for n, _ in models]
    print("| mean of clip means | " + " | ".join(f"{m:.2f}" for m in means) + " |")


if __name__ == "__main__":
    main()
