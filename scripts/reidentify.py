#!/usr/bin/env python3
"""Faces of clips that dlib still takes for the person they were, through the CLI, per password.

Issue 11 measured its surrogates this way (a clip of walkers: 18% of sampled faces re-identified):
each clip is anonymized with `faceveil anonymize CLIP` at the CLI's defaults once per password
(each run draws a fresh salt, so each run is a fresh draw of every track's key); in every EVERY-th
frame dlib's HOG detector (1x upsampling) finds the faces of the ORIGINAL frame, and each face's
128-d descriptor (dlib's 5-point shape at that box) in the original is compared with the
anonymized frame's at the same box: below 0.6 it is judged the same person. Also counted: whether
dlib's detector still finds a face there (IoU > 0.3) in the anonymized frame. dlib is the judge
only (models/sdn/quick_judge.py's), never used in fitting. `--mode blur|pixelate|solid` runs a
one-way effect instead (once: it has no key): the floor that the face's surroundings alone give
(pose, outline, hair, clothes), which a surrogate cannot go below.

In sdn mode also: whether two runs (two passwords) give two identities, run p against run p+1
(the same face, distance >= 0.6 between the two anonymized frames), and with --wrong, each run
restored with the next run's password: the wrong-password face judged the original, and judged
a different identity from the surrogate it came from, as issue 11 states those targets.

Prints, per clip and password, the faces judged the original and found, then the worst and the
mean over the passwords; with --out, the same as JSON.

Usage: deps/sdn-venv/bin/python scripts/reidentify.py CLIP [CLIP...] [--passwords N] [--every K]
       [--mode sdn|blur|pixelate|solid] [--wrong] [--bin target/release/faceveil] [--out FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "sdn"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photo_roundtrip import iou  # noqa: E402
from quick_judge import Judge  # noqa: E402


def judged_frames(path, every):
    """Every `every`-th frame of a video (RGB), by index: only those are judged, and a whole
    clip decoded at once would take a gigabyte for the selfie's 352 frames."""
    cap = cv2.VideoCapture(path)
    out, i = {}, 0
    while cap.grab():
        if i % every == 0:
            _, f = cap.retrieve()
            out[i] = np.ascontiguousarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
        i += 1
    return out


def boxes(judge, img):
    return [[r.left(), r.top(), r.right(), r.bottom()] for r in judge.det(img, 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--passwords", type=int, default=6, help="runs per clip, each with its own password and salt")
    ap.add_argument("--every", type=int, default=10, help="judge every K-th frame")
    ap.add_argument("--mode", default="sdn", choices=["sdn", "blur", "pixelate", "solid"])
    ap.add_argument("--wrong", action="store_true", help="also restore each run with the next run's password")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "faceveil"))
    ap.add_argument("--out")
    args = ap.parse_args()
    judge = Judge()
    report = {"command": " ".join(sys.argv), "clips": {}}
    passwords = args.passwords if args.mode == "sdn" else 1
    with tempfile.TemporaryDirectory() as work:
        for clip in args.clips:
            orig = judged_frames(clip, args.every)
            faces = [(i, b, judge.desc(img, b)) for i, img in orig.items() for b in boxes(judge, img)]
            if not faces:
                print(f"{os.path.basename(clip)}: dlib finds no face in the original's judged frames; skipped")
                continue
            runs, surrogates = [], []
            for p in range(passwords):
                out = os.path.join(work, f"{os.path.basename(clip)}.{p}.mp4")
                env = dict(os.environ, FACEVEIL_PASSWORD=f"re-identification run {p}")
                run = subprocess.run([args.bin, "anonymize", clip, "-o", out, "--no-audio", "--mode", args.mode], env=env, capture_output=True, text=True)
                if run.returncode != 0:
                    sys.exit(f"faceveil anonymize {clip} failed: {run.stderr.strip()}")
                anon = judged_frames(out, args.every)
                sur = [judge.desc(anon[i], b) for i, b, _ in faces]
                same = sum(np.linalg.norm(s - d) < 0.6 for s, (_, _, d) in zip(sur, faces))
                found_there = {i: boxes(judge, anon[i]) for i in {i for i, _, _ in faces}}
                found = sum(any(iou(a, b) > 0.3 for a in found_there[i]) for i, b, _ in faces)
                result = {"judged_original": same / len(faces), "found": found / len(faces)}
                if surrogates:
                    result["two_identities_with_last_run"] = float(np.mean([np.linalg.norm(a - b) >= 0.6 for a, b in zip(sur, surrogates[-1])]))
                surrogates.append(sur)
                line = f"judged the original {100 * same / len(faces):.1f}%, dlib finds a face {100 * found / len(faces):.1f}%"
                if "two_identities_with_last_run" in result:
                    line += f", two identities with the run before {100 * result['two_identities_with_last_run']:.1f}%"
                if args.wrong and args.mode == "sdn":
                    wrong = os.path.join(work, f"{os.path.basename(clip)}.{p}.wrong.mp4")
                    env = dict(os.environ, FACEVEIL_PASSWORD=f"re-identification run {p + 1}")
                    run = subprocess.run([args.bin, "restore", out, "-o", wrong], env=env, capture_output=True, text=True)
                    if run.returncode != 0:
                        sys.exit(f"faceveil restore {out} failed: {run.stderr.strip()}")
                    back = judged_frames(wrong, args.every)
                    wd = [judge.desc(back[i], b) for i, b, _ in faces]
                    result["wrong_judged_original"] = float(np.mean([np.linalg.norm(w - d) < 0.6 for w, (_, _, d) in zip(wd, faces)]))
                    result["wrong_differs_from_surrogate"] = float(np.mean([np.linalg.norm(w - s) >= 0.6 for w, s in zip(wd, sur)]))
                    line += (f"; a wrong password's restore judged the original {100 * result['wrong_judged_original']:.1f}%, "
                             f"another identity than the surrogate {100 * result['wrong_differs_from_surrogate']:.1f}%")
                runs.append(result)
                print(f"{os.path.basename(clip)} run {p}: {len(faces)} faces; {line}", flush=True)
            summary = {}
            for name in ("judged_original", "two_identities_with_last_run", "wrong_judged_original", "wrong_differs_from_surrogate"):
                v = [r[name] for r in runs if name in r]
                if v:
                    worst = max(v) if name.endswith("original") else min(v)
                    summary[name] = {"mean": float(np.mean(v)), "worst": worst}
                    print(f"{os.path.basename(clip)}: {name.replace('_', ' ')}: mean {100 * np.mean(v):.1f}%, worst run {100 * worst:.1f}%", flush=True)
            report["clips"][os.path.basename(clip)] = {"faces_judged": len(faces), "frames_judged": len(orig),
                                                       "runs": runs, "summary": summary}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
