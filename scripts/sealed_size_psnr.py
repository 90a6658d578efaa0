#!/usr/bin/env python3
"""Sealed faces on a clip, measured with the release CLI: what the sealed data costs against the
anonymized video, and how close the restored file's faces come to the original's decoded frames.

For each clip: anonymize without recipients (the plain anonymized video), anonymize with one
recipient (default sealed layout: a face video per track), restore with the identity at the
CLI's defaults, and (with --lossless) anonymize with --sealed-lossless and restore with
--lossless, which must give every face bit-exact. With --to-password the faces are sealed to the
password instead (`--seal-password`, no recipient) and restored with the password alone, and a
restore with a wrong password must fail and write nothing (`wrong_password_refused`). Face PSNR is over RGB (as the CLI tests
measure it), inside each recorded square less 4 px at each edge (the RGB conversion of the edge
also reads chroma from outside the square), per face; the mean and the worst face are reported.
It is also reported over the decoded Y, U and V samples themselves: the RGB figure also counts
how the two files' colorimetry tags (matrix, chroma siting) make a player convert the same
samples, which differ where the source's caps carry none (05_crowd_mot20-08_960x366.mp4).

Sizes: source_video_bytes is the clip's own coded video stream (parsed from its container), and
source_video_share its size against the anonymized video: what sealing the source's coded
pictures whole, in place of face videos, would carry (before the sealing's own framing).
sealed_bytes are the sealed chunks themselves, as the SEI carries them; sealed_base64_bytes
the same as base64, as the sidecar carries them; video_growth_share how much larger the video
with recipients is than the one without (the SEI's records and sealed faces, and the two runs'
different surrogates, each made with a fresh key).

    deps/venv/bin/python scripts/sealed_size_psnr.py samples/faces_720p.mp4 [--lossless] [--to-password]
        [--sealed-quantizer QP] [--json out.json]

--sealed-quantizer seals at that x264 quantizer instead of the default (`anonymize
--sealed-quantizer`), to measure what a coarser one saves and costs.

Needs numpy (deps/venv) and gst-launch-1.0; the CLI is target/release/faceveil, or `--cli` to
measure another build (a checkout's target/release/faceveil: it finds its models and plugin
from there, beside the program).
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(REPO, "target", "release", "faceveil")
INSET = 4


def run(args, password=None, must_fail=False):
    env = dict(os.environ)
    env.pop("FACEVEIL_PASSWORD", None)
    if password:
        env["FACEVEIL_PASSWORD"] = password
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    if (out.returncode != 0) != must_fail:
        sys.exit(f"{' '.join(args)} {'succeeded' if must_fail else 'failed'}:\n{out.stderr}")
    return out.stdout.strip()


def decode(path, fmt):
    """Every frame of a video as RGB, (frames, height, width, 3), or I420 as the decoder gives
    it (for even sizes), (frames, height * 3 / 2, width): Y, then U and V side by side."""
    info = subprocess.run(["gst-discoverer-1.0", path], capture_output=True, text=True).stdout
    width = int(re.search(r"Width: (\d+)", info).group(1))
    height = int(re.search(r"Height: (\d+)", info).group(1))
    with tempfile.NamedTemporaryFile(suffix=".raw") as raw:
        subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!", "videoconvert", "!",
             f"video/x-raw,format={fmt}", "!", "filesink", f"location={raw.name}"],
            check=True,
        )
        data = np.fromfile(raw.name, dtype=np.uint8)
    if fmt == "RGB":
        return data.reshape(-1, height, width, 3)
    return data.reshape(-1, height * 3 // 2, width)


def yuv_face(frame, rect, width, height):
    """The Y, U and V samples of a face rectangle in an I420 frame from decode(), as one array."""
    x0, y0, x1, y1 = rect
    y = frame[:height, :].reshape(height, width)[y0:y1, x0:x1]
    chroma = frame[height:, :].reshape(-1)
    half = (height // 2, width // 2)
    u = chroma[: half[0] * half[1]].reshape(half)[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
    v = chroma[half[0] * half[1]:].reshape(half)[y0 // 2:y1 // 2, x0 // 2:x1 // 2]
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()])


def source_video_bytes(clip):
    """The bytes of the clip's own coded video stream, as its container holds it (parsed, not
    decoded): what sealing the source's coded pictures whole would carry in place of face videos.
    Its decoded frames are the original's decoded frames that the face PSNR is measured against."""
    info = subprocess.run(["gst-discoverer-1.0", "-v", clip], capture_output=True, text=True).stdout
    media = re.search(r"video #\d+: (video/[a-z0-9-]+)", info).group(1)
    with tempfile.NamedTemporaryFile(suffix=".es") as es:
        subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "parsebin", "!", media, "!", "filesink",
             f"location={es.name}"],
            check=True, capture_output=True,
        )
        return os.path.getsize(es.name)


def records(sidecar):
    with open(sidecar) as f:
        lines = f.read().splitlines()
    # A signed stream's sidecar ends in its signed end ({"end": ...}), not a frame's record.
    return [r for r in map(json.loads, lines[1:]) if "end" not in r]


def face_rects(record, width, height):
    for face in record["faces"]:
        cx, cy, side = face["square"]
        x0, y0 = cx - side / 2, cy - side / 2
        clip = lambda v, hi: min(max(int(v), 0), hi)
        yield face, (clip(x0 + INSET, width), clip(y0 + INSET, height),
                     clip(x0 + side - INSET, width), clip(y0 + side - INSET, height))


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def finite_mean(scores):
    """The mean PSNR of the faces that differ at all (a face that comes back exactly has none)."""
    finite = [s for s in scores if np.isfinite(s)]
    return round(float(np.mean(finite)), 2) if finite else None


def measure(cli, clip, lossless, to_password, quantizer=None):
    work = tempfile.mkdtemp(prefix="faceveil-sealed-measure-")
    identity = os.path.join(work, "me.age")
    recipient = run([cli, "keygen", "-o", identity])
    # Sealed to the recipient and opened with its identity, or sealed to the password and
    # opened with it alone.
    seal_to, open_with, opener = (["--seal-password"], [], "measure") if to_password else (["--recipient", recipient], ["--identity", identity], None)
    coarser = ["--sealed-quantizer", str(quantizer)] if quantizer else []
    plain, sealed, restored = (os.path.join(work, n) for n in ("plain.mp4", "sealed.mp4", "restored.mp4"))
    run([cli, "anonymize", clip, "-o", plain], password="measure")
    run([cli, "anonymize", clip, "-o", sealed] + seal_to + coarser, password="measure")
    run([cli, "restore", sealed, "-o", restored] + open_with, password=opener)
    wrong = os.path.join(work, "wrong.mp4")
    if to_password:
        run([cli, "restore", sealed, "-o", wrong], password="not the password", must_fail=True)
    recs = records(sealed + ".faceveil")
    sealed_b64 = sum(len(f.get("sealed", "")) for r in recs for f in r["faces"])
    sealed_raw = sum(len(base64.b64decode(f["sealed"])) for r in recs for f in r["faces"] if "sealed" in f)
    source_bytes = source_video_bytes(clip)
    original, back = decode(clip, "RGB"), decode(restored, "RGB")
    original_yuv, back_yuv = decode(clip, "I420"), decode(restored, "I420")
    height, width = original.shape[1:3]
    scores, yuv_scores = [], []
    for r in recs:
        i = r["frame"]
        for _, (x0, y0, x1, y1) in face_rects(r, width, height):
            if x1 > x0 and y1 > y0:
                scores.append(psnr(back[i, y0:y1, x0:x1], original[i, y0:y1, x0:x1]))
                rect = (x0, y0, x1, y1)
                yuv_scores.append(psnr(yuv_face(back_yuv[i], rect, width, height), yuv_face(original_yuv[i], rect, width, height)))
    result = {
        "clip": os.path.relpath(clip, REPO) if clip.startswith(REPO) else clip,
        "size": f"{width}x{height}",
        "frames": len(recs),
        "faces": len(scores),
        "anonymized_bytes": os.path.getsize(plain),
        "anonymized_sealed_bytes": os.path.getsize(sealed),
        "sealed_bytes": sealed_raw,
        "sealed_base64_bytes": sealed_b64,
        "sealed_share": round(sealed_raw / os.path.getsize(plain), 3),
        "sealed_base64_share": round(sealed_b64 / os.path.getsize(plain), 3),
        "video_growth_share": round((os.path.getsize(sealed) - os.path.getsize(plain)) / os.path.getsize(plain), 3),
        "restored_bytes": os.path.getsize(restored),
        "source_video_bytes": source_bytes,
        "source_video_share": round(source_bytes / os.path.getsize(plain), 3),
        "face_psnr_mean": finite_mean(scores),
        "face_psnr_worst": round(float(np.min(scores)), 2) if scores else None,
        "face_psnr_yuv_mean": finite_mean(yuv_scores),
        "face_psnr_yuv_worst": round(float(np.min(yuv_scores)), 2) if yuv_scores else None,
        "faces_exact": int(np.sum(np.isinf(scores))),
        "sealed_to": "password" if to_password else "recipient",
        "sealed_quantizer": quantizer or "default",
    }
    if to_password:
        result["wrong_password_refused"] = not os.path.exists(wrong)
    if lossless:
        exact_sealed, exact = os.path.join(work, "sealed-lossless.mp4"), os.path.join(work, "exact.mp4")
        run([cli, "anonymize", clip, "-o", exact_sealed, "--sealed-lossless"] + seal_to, password="measure")
        run([cli, "restore", exact_sealed, "-o", exact, "--lossless"] + open_with, password=opener)
        lrecs = records(exact_sealed + ".faceveil")
        back = decode(exact, "RGB")
        worst = 0
        for r in lrecs:
            for _, (x0, y0, x1, y1) in face_rects(r, width, height):
                d = np.abs(back[r["frame"], y0:y1, x0:x1].astype(int) - original[r["frame"], y0:y1, x0:x1].astype(int))
                worst = max(worst, int(d.max()) if d.size else 0)
        result["lossless_sealed_bytes"] = sum(len(base64.b64decode(f["sealed"])) for r in lrecs for f in r["faces"] if "sealed" in f)
        result["lossless_max_pixel_difference"] = worst
    subprocess.run(["rm", "-rf", work])
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clips", nargs="+")
    p.add_argument("--lossless", action="store_true", help="also check the lossless option is bit-exact")
    p.add_argument("--to-password", action="store_true", help="seal to the password (--seal-password) instead of a recipient")
    p.add_argument("--sealed-quantizer", type=int, help="seal at this x264 quantizer (anonymize --sealed-quantizer)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--cli", default=CLI, help="the faceveil binary to measure (default: this checkout's release build)")
    args = p.parse_args()
    cli = os.path.abspath(args.cli)
    results = []
    for clip in args.clips:
        r = measure(cli, os.path.abspath(clip), args.lossless, args.to_password, args.sealed_quantizer)
        print(json.dumps(r), flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
