#!/usr/bin/env python3
"""Faces left uncovered when detection skips frames.

For each clip, reads every original frame with CenterFace at full resolution (threshold 0.5, the
reference roundtrip.py uses), then anonymizes the clip with `faceveil anonymize --detect-interval
N` for each N given and reads the squares it covered from its sidecar. A reference face is
uncovered in a frame unless a covered square holds its centre inside the blend ellipse (weight >=
0.5) and >= 80% of its box (roundtrip.is_leaked). Prints, per clip and N, the frames with an
uncovered face, and those with a face uncovered that the first N given (normally 1: detection on
every frame) covered: the leak that skipping frames adds. With --float-reference the first run
is detection on every frame with CenterFace's float model instead, the reference for the int8
model the CPU runs (src/faces/detect/centerface.rs), and the runs after the second are also
compared with the second (that int8 model on every frame).

Usage: deps/sdn-venv/bin/python scripts/leaks.py CLIP [CLIP...] [--detect-interval N ...] [--float-reference] [--bin FACEVEIL]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roundtrip as rt  # noqa: E402


FLOAT_CENTERFACE = os.path.join(rt.ROOT, "deps", "centerface", "centerface.onnx")


def covered_squares(bin_path, clip, interval, workdir, float_model=False):
    out = os.path.join(workdir, f"{os.path.basename(clip)}.di{interval}{'.float' if float_model else ''}.mp4")
    env = dict(os.environ, FACEVEIL_PASSWORD="leak measurement")
    if float_model:
        env["FACEVEIL_CENTERFACE"] = FLOAT_CENTERFACE
    run = subprocess.run([bin_path, "anonymize", clip, "-o", out, "--detect-interval", str(interval)],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        sys.exit(f"faceveil anonymize failed on {clip}:\n{run.stderr}")
    return rt.read_sidecar(out + ".faceveil")[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--detect-interval", type=int, action="append", dest="intervals")
    ap.add_argument("--float-reference", action="store_true")
    ap.add_argument("--bin", default=os.path.join(rt.ROOT, "target", "release", "faceveil"))
    args = ap.parse_args()
    runs = [(f"interval {n}", n, False) for n in args.intervals or [1, 2, 3]]
    if args.float_reference:
        runs.insert(0, ("interval 1, float CenterFace", 1, True))
    with open(os.path.join(rt.ROOT, "models", "sdn", "sdn.json")) as f:
        blend = json.load(f)["blend"]
    detector = rt.Detector()
    with tempfile.TemporaryDirectory() as workdir:
        for clip in args.clips:
            cap = cv2.VideoCapture(clip)
            reference = []
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                reference.append(detector(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 0.5))
            faces = sum(len(d) for d in reference)
            # Each run against the first, and, after a float reference, against the second too:
            # the detector the CPU runs, on every frame, which is what skipping frames must match.
            bases = []
            for label, interval, float_model in runs:
                squares = covered_squares(args.bin, clip, interval, workdir, float_model)
                leaked = {(n, i) for n, dets in enumerate(reference) for i, box in enumerate(dets)
                          if rt.is_leaked(box, squares.get(n, []), blend)}
                frames = sorted({n for n, _ in leaked})
                beyond = [f"beyond {runs[j][0]}'s {len(added)} {added}"
                          for j, base in enumerate(bases) for added in [sorted({n for n, _ in leaked - base})]]
                if len(bases) < (2 if args.float_reference else 1):
                    bases.append(leaked)
                print(f"{os.path.basename(clip)}  {label}: {len(reference)} frames, {faces} reference faces; "
                      f"frames with an uncovered face {len(frames)}" + "".join("; " + b for b in beyond), flush=True)


if __name__ == "__main__":
    main()
