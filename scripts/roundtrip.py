#!/usr/bin/env python3
"""End-to-end round trip of faceveil's SDN mode on video clips, with face-region metrics.

For each clip (and each --detect-interval):
  1. anonymize with password A; restore with A (right), with B (wrong), and with A through
     the detection fallback (a copy of the anonymized clip without its sidecar, header passed
     with --header; only for streams keyed as a whole: per-track keys refuse it by design);
     every CLI call is timed (wall clock);
  2. decode original, anonymized and the three restored clips with OpenCV and check that the
     frame counts agree (metrics use the common prefix if they do not);
  3. per recorded crop (sidecar) and frame: PSNR (RGB) and SSIM (luma, gaussian 11x11,
     sigma 1.5) of each decoded clip against the original, over the crop's inner region
     (blend weight 1: inside the ellipse at radius 1-feather); plus background PSNR (pixels
     outside every crop square) as a codec-loss reference;
  4. leak rate: CenterFace (full resolution, padded to multiples of 32, threshold 0.5, NMS 0.3)
     on every ORIGINAL frame; a face is leaked in a frame unless some recorded crop has the
     face box centre inside its ellipse at blend weight >= 0.5 and holds >= 80% of the box
     area inside its square;
  5. with --rtsp, also serves the clip anonymized over RTSP and restores from the stream;
  6. prints a markdown table per clip and (unless --no-doc) writes docs/ROUNDTRIP.md: a summary
     table across clips, the per-clip tables, and a placeholder for the hand-written reading.

Usage:
  nice -n 10 deps/sdn-venv/bin/python scripts/roundtrip.py CLIP [CLIP...] [--detect-interval N ...]
      [--out DIR] [--max-frames N] [--rtsp] [--reuse] [--doc PATH | --no-doc]

--reuse takes a clip's result.json from an earlier run into the same --out (and that run's binary
snapshot), so that a run cut short can be completed clip by clip.
"""
import argparse
import datetime
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "sdn"))
cv2.setNumThreads(1)

PW_A = "roundtrip-password-A"
PW_B = "roundtrip-password-B-wrong"
PSNR_CAP = 99.0  # identical regions (MSE 0) count as 99 dB so that means stay finite
VARIANTS = [  # (key, label)
    ("anon", "anonymized vs original"),
    ("right", "restored, right password (crops from stream SEI) vs original"),
    ("wrong", "restored, wrong password (crops from stream SEI) vs original"),
    ("sidecar", "restored, right password, SEI stripped, crops from sidecar vs original"),
    ("fallback", "restored, right password, SEI stripped, no sidecar: detection fallback vs original"),
]
RTSP_VARIANT = ("rtsp", "restored, right password, from the anonymized stream served over RTSP vs original")


# ----------------------------------------------------------------------------------------
# running the CLI

def run_cli(bin_path, args, password, log):
    env = dict(os.environ, FACEVEIL_PASSWORD=password)
    cmd = ["nice", "-n", "10", bin_path] + args
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.monotonic() - t0
    with open(log, "w") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.write(p.stdout)
        f.write(p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {p.returncode}): {p.stderr.strip()[-500:]}")
    return dt, (p.stdout + p.stderr).strip()


SEI_UUID = b"faceveil-sdn-v1\0"  # plugins/src/streamdata.rs


def rtsp_round_trip(bin_path, src, out, di, va, d):
    """`faceveil anonymize SRC --serve-rtsp PORT` in the background and `faceveil restore
    rtsp://...` (password A, header and crops from the stream's SEI) into OUT; wall time of the
    restore (the server plays the file in real time)."""
    import socket
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = s_.getsockname()[1]
    env = dict(os.environ, FACEVEIL_PASSWORD=PW_A)
    log = open(os.path.join(d, "rtsp_server.log"), "w")
    server = subprocess.Popen(["nice", "-n", "10", bin_path, "anonymize", src, "--serve-rtsp", str(port)] + di + va,
                              env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        for line in server.stdout:
            if line.startswith("serving rtsp://"):
                break
        else:
            raise RuntimeError("the RTSP server did not start (see rtsp_server.log)")
        t, _ = run_cli(bin_path, ["restore", f"rtsp://127.0.0.1:{port}/faceveil", "-o", out] + di, PW_A,
                       os.path.join(d, "restore_rtsp.log"))
    finally:
        server.terminate()
        server.wait()
        log.close()
    return t


def strip_sei(src, dst):
    """Copy src to dst with faceveil's per-frame SEI made unrecognisable: the 16-byte
    user-data UUID is overwritten in place (same length, so the MP4 index stays valid and
    the pixels are untouched). Returns how many SEI payloads were disabled."""
    with open(src, "rb") as f:
        data = f.read()
    n = data.count(SEI_UUID)
    with open(dst, "wb") as f:
        f.write(data.replace(SEI_UUID, b"roundtrip-nosei\0"))
    return n


def trim_clip(src, dst, n):
    """First n frames of src, re-encoded with x264 (CRF-like quantizer 18) through GStreamer;
    audio dropped. The trimmed clip is the reference for every metric."""
    cap = cv2.VideoCapture(src)
    w, h = int(cap.get(3)), int(cap.get(4))
    fps = cap.get(5) or 30.0
    num, den = (int(round(fps * 1001)), 1001) if abs(fps * 1001 - round(fps * 1001)) < 1e-6 \
        and abs(fps - round(fps)) > 1e-3 else (int(round(fps)), 1)
    pipe = (f"fdsrc fd=0 ! rawvideoparse format=bgr width={w} height={h} framerate={num}/{den} "
            f"! videoconvert ! video/x-raw,format=I420 ! x264enc pass=qual quantizer=18 "
            f"speed-preset=medium threads=1 ! h264parse ! mp4mux ! filesink location={dst}")
    p = subprocess.Popen(["nice", "-n", "10", "gst-launch-1.0", "-q"] + shlex.split(pipe),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    k = 0
    while k < n:
        ok, fr = cap.read()
        if not ok:
            break
        p.stdin.write(np.ascontiguousarray(fr).tobytes())
        k += 1
    p.stdin.close()
    if p.wait() != 0:
        raise RuntimeError("gst-launch-1.0 trimming failed")
    return k


# ----------------------------------------------------------------------------------------
# metrics

def luma(rgb):
    rgb = rgb.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def ssim_map(a, b):
    """SSIM map of two float32 luma images (0..255), gaussian window 11x11, sigma 1.5."""
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)
    mu_a, mu_b = g(a), g(b)
    saa = g(a * a) - mu_a * mu_a
    sbb = g(b * b) - mu_b * mu_b
    sab = g(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * sab + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (saa + sbb + C2))


def psnr_from_mse(mse):
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10 * math.log10(255.0 ** 2 / mse))


def ellipse_weight(x, y, cx, cy, side, blend):
    """Blend weight at pixel (x, y) (pixel centres at +0.5, as src/blend.rs)."""
    half = side / 2
    u = (x + 0.5 - cx) / half
    v = (y + 0.5 - cy) / half
    r = np.sqrt((u / blend["axis_x"]) ** 2 + (v / blend["axis_y"]) ** 2)
    f = blend["feather"]
    t = np.clip((1 - r) / f, 0, 1)
    w = t * t * (3 - 2 * t)
    return np.where(r <= 1 - f, 1.0, np.where(r >= 1, 0.0, w))


def inner_region(crop, blend, W, H):
    """(x0, y0, x1, y1, mask) for the crop's weight-1 region, clipped to the frame."""
    cx, cy, side = crop
    half = side / 2
    f = blend["feather"]
    ax, ay = blend["axis_x"] * half * (1 - f), blend["axis_y"] * half * (1 - f)
    x0, x1 = max(0, int(math.floor(cx - ax - 1))), min(W, int(math.ceil(cx + ax + 1)))
    y0, y1 = max(0, int(math.floor(cy - ay - 1))), min(H, int(math.ceil(cy + ay + 1)))
    if x1 <= x0 or y1 <= y0:
        return None
    xs = np.arange(x0, x1)[None, :]
    ys = np.arange(y0, y1)[:, None]
    u = (xs + 0.5 - cx) / half / blend["axis_x"]
    v = (ys + 0.5 - cy) / half / blend["axis_y"]
    mask = np.sqrt(u * u + v * v) <= 1 - f
    if not mask.any():
        return None
    return x0, y0, x1, y1, mask


def region_metrics(ref, img, reg):
    x0, y0, x1, y1, mask = reg
    H, W = ref.shape[:2]
    a = ref[y0:y1, x0:x1].astype(np.float32)
    b = img[y0:y1, x0:x1].astype(np.float32)
    mse = float(((a - b) ** 2)[mask].mean())
    # SSIM on a box padded by the window radius so the mask pixels see real neighbours.
    p = 5
    px0, py0, px1, py1 = max(0, x0 - p), max(0, y0 - p), min(W, x1 + p), min(H, y1 + p)
    sm = ssim_map(luma(ref[py0:py1, px0:px1]), luma(img[py0:py1, px0:px1]))
    sm = sm[y0 - py0:y0 - py0 + (y1 - y0), x0 - px0:x0 - px0 + (x1 - x0)]
    return psnr_from_mse(mse), float(sm[mask].mean())


# ----------------------------------------------------------------------------------------
# leak check

class Detector:
    def __init__(self):
        from centerface import CenterFace, decode  # models/sdn/centerface.py
        self.cf = CenterFace(threads=1)
        self.decode = decode

    def __call__(self, rgb, threshold=0.5):
        h, w = rgb.shape[:2]
        hp, wp = int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32)
        blob = np.zeros((1, 3, hp, wp), np.float32)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        heat, scale, off, lms = self.cf.sess.run(["537", "538", "539", "540"], {"input.1": blob})
        dets, _ = self.decode(heat, scale, off, lms, (hp, wp), threshold)
        if len(dets):
            dets[:, 0:4:2] = np.clip(dets[:, 0:4:2], 0, w)
            dets[:, 1:4:2] = np.clip(dets[:, 1:4:2], 0, h)
        return dets


def is_leaked(box, crops, blend):
    x0, y0, x1, y1 = [float(v) for v in box[:4]]
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    bx, by = (x0 + x1) / 2, (y0 + y1) / 2
    for cx, cy, side in crops:
        # ellipse_weight takes pixel indices (centre at +0.5); the box centre is continuous.
        if float(ellipse_weight(bx - 0.5, by - 0.5, cx, cy, side, blend)) < 0.5:
            continue
        h = side / 2
        iw = max(0.0, min(x1, cx + h) - max(x0, cx - h))
        ih = max(0.0, min(y1, cy + h) - max(y0, cy - h))
        if iw * ih / area >= 0.8:
            return False
    return True


# ----------------------------------------------------------------------------------------

def stats(vals):
    if not vals:
        return None
    a = np.asarray(vals, np.float64)
    return float(a.mean()), float(np.percentile(a, 10))


def read_sidecar(path):
    with open(path) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    header, frames = lines[0], {}
    for rec in lines[1:]:
        # {"frame", "pts", "faces": [{"square": [cx, cy, side], "track", "landmarks"}]};
        # older sidecars had "crops": [[cx, cy, side]]; a signed stream ends in {"end": ...}
        if "end" in rec:
            continue
        if "faces" in rec:
            frames[int(rec["frame"])] = [tuple(map(float, f["square"])) for f in rec["faces"]]
        else:
            frames[int(rec["frame"])] = [tuple(map(float, c)) for c in rec["crops"]]
    return header, frames


def process(clip, interval, args, blend, detector):
    name = os.path.splitext(os.path.basename(clip))[0]
    d = os.path.join(args.out, f"{name}_di{interval}")
    os.makedirs(d, exist_ok=True)
    res = {"clip": clip, "name": name, "interval": interval, "notes": []}
    src = clip
    if args.max_frames:
        cap = cv2.VideoCapture(clip)
        total = int(cap.get(7))
        cap.release()
        if total > args.max_frames:
            src = os.path.join(d, "original_trimmed.mp4")
            n = trim_clip(clip, src, args.max_frames)
            res["notes"].append(f"trimmed to the first {n} of {total} frames "
                                "(re-encoded with x264 quantizer 18, no audio); metrics use the trimmed clip")
    anon = os.path.join(d, "anon.mp4")
    right = os.path.join(d, "restored_right.mp4")
    wrong = os.path.join(d, "restored_wrong.mp4")
    fb_in = os.path.join(d, "anon_nosei.mp4")
    fb = os.path.join(d, "restored_fallback.mp4")
    sc = os.path.join(d, "restored_sidecar_only.mp4")
    for p in (anon, anon + ".faceveil", right, wrong, fb_in, fb_in + ".faceveil", fb, sc):
        if os.path.exists(p):
            os.remove(p)
    di = ["--detect-interval", str(interval)]
    # the variant is chosen when anonymizing; every restore takes it from the stream's header
    va = ["--variant", args.variant] if args.variant else []
    times = {}
    times["anonymize"], _ = run_cli(args.bin, ["anonymize", src, "-o", anon] + di + va, PW_A,
                                    os.path.join(d, "anonymize.log"))
    times["restore (right)"], _ = run_cli(args.bin, ["restore", anon, "-o", right] + di, PW_A,
                                          os.path.join(d, "restore_right.log"))
    times["restore (wrong)"], msg = run_cli(args.bin, ["restore", anon, "-o", wrong] + di, PW_B,
                                            os.path.join(d, "restore_wrong.log"))
    res["wrong_msg"] = msg
    # The CLI reads per-frame crops from the stream's SEI first, then from the sidecar, and
    # only then detects faces: the fallback needs a copy with neither.
    res["sei_records"] = strip_sei(anon, fb_in)
    with open(anon + ".faceveil") as f:
        header_line = f.readline().strip()
    times["restore (sidecar only)"], _ = run_cli(
        args.bin, ["restore", fb_in, "-o", sc, "--sidecar", anon + ".faceveil"] + di, PW_A,
        os.path.join(d, "restore_sidecar_only.log"))
    # Per-track keys (the CLI's default) hang on the track ids only the records carry: a restore
    # from the pixels alone is refused by design, so the fallback runs only for stream keys.
    per_track = json.loads(header_line).get("keying") == "track"
    if per_track:
        res["notes"].append("keyed per track (the default): the detection fallback (pixels alone, no SEI, "
                            "no sidecar) is refused by design and not run")
    else:
        times["restore (fallback)"], _ = run_cli(
            args.bin, ["restore", fb_in, "-o", fb, "--header", header_line] + di, PW_A,
            os.path.join(d, "restore_fallback.log"))
    variants = [v for v in VARIANTS if not (per_track and v[0] == "fallback")]
    if args.rtsp:
        rt = os.path.join(d, "restored_rtsp.mkv")
        times["restore through RTSP (server plays in real time)"] = rtsp_round_trip(args.bin, src, rt, di, va, d)
        variants.append(RTSP_VARIANT)
    res["times"] = times
    res["variants"] = variants

    header, crops_by_frame = read_sidecar(anon + ".faceveil")
    res["model_sha256"] = header.get("model_sha256")
    paths = {"orig": src, "anon": anon, "right": right, "wrong": wrong, "sidecar": sc}
    if not per_track:
        paths["fallback"] = fb
    if args.rtsp:
        paths["rtsp"] = rt
    caps = {k: cv2.VideoCapture(p) for k, p in paths.items()}
    W, H = int(caps["orig"].get(3)), int(caps["orig"].get(4))
    res["resolution"] = f"{W}x{H}"
    res["fps"] = caps["orig"].get(5)
    counts = {k: 0 for k in caps}
    done = {k: False for k in caps}
    per = {k: {"psnr": [], "ssim": []} for k, _ in variants}
    bg_mse = {k: [] for k, _ in variants}
    faces_seen = leaked = frames_leak = 0
    leak_sizes = []
    # flicker: mean absolute frame-to-frame change inside each face region, in the anonymized
    # clip and in the original over the same regions (a stable surrogate changes no more than
    # the face it replaces)
    temporal = {"anon": [], "orig": []}
    prev = None
    n = 0
    while True:
        frames = {}
        for k, c in caps.items():
            if done[k]:
                continue
            ok, fr = c.read()
            if not ok:
                done[k] = True
                continue
            counts[k] += 1
            frames[k] = cv2.cvtColor(fr, cv2.COLOR_BGR2RGB)
        if len(frames) < len(caps):
            if not frames:
                break
            continue  # drain the longer streams to count their frames
        crops = crops_by_frame.get(n, [])
        ref = frames["orig"]
        sq = np.ones((H, W), bool)
        for cx, cy, side in crops:
            h = side / 2
            sq[max(0, int(cy - h)):max(0, int(math.ceil(cy + h))),
               max(0, int(cx - h)):max(0, int(math.ceil(cx + h)))] = False
        for k, _ in variants:
            if sq.any():
                diff = (ref.astype(np.float32) - frames[k].astype(np.float32)) ** 2
                bg_mse[k].append(float(diff[sq].mean()))
        for crop in crops:
            reg = inner_region(crop, blend, W, H)
            if reg is None:
                continue
            for k, _ in variants:
                p, s = region_metrics(ref, frames[k], reg)
                per[k]["psnr"].append(p)
                per[k]["ssim"].append(s)
            if prev is not None:
                x0, y0, x1, y1, mask = reg
                for k in ("anon", "orig"):
                    d_ = np.abs(frames[k][y0:y1, x0:x1].astype(np.float32) - prev[k][y0:y1, x0:x1].astype(np.float32))
                    temporal[k].append(float(d_[mask].mean()))
        dets = detector(ref, 0.5)
        any_leak = False
        for b in dets:
            faces_seen += 1
            if is_leaked(b, crops, blend):
                leaked += 1
                any_leak = True
                leak_sizes.append(float(max(b[2] - b[0], b[3] - b[1])))
        frames_leak += any_leak
        prev = {"anon": frames["anon"], "orig": ref}
        n += 1
    for c in caps.values():
        c.release()
    res["frame_counts"] = counts
    res["frames_compared"] = n
    res["sidecar_frames"] = len(crops_by_frame)
    if len(set(counts.values())) != 1:
        res["notes"].append("frame counts differ: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                            + f"; metrics over the first {n}")
    if len(crops_by_frame) != counts["orig"]:
        res["notes"].append(f"sidecar has {len(crops_by_frame)} frame lines for {counts['orig']} frames")
    res["crops"] = sum(len(v) for v in crops_by_frame.values())
    res["face_crops_measured"] = len(per["anon"]["psnr"])
    res["metrics"] = {k: {"psnr": stats(v["psnr"]), "ssim": stats(v["ssim"])} for k, v in per.items()}
    res["bg_psnr"] = {k: (psnr_from_mse(float(np.mean(v))) if v else None) for k, v in bg_mse.items()}
    res["faces_seen"] = faces_seen
    res["leaked"] = leaked
    res["frames_leak"] = frames_leak
    res["leak_sizes"] = leak_sizes
    res["temporal_change"] = {k: (float(np.mean(v)) if v else None) for k, v in temporal.items()}
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def fmt(x, nd):
    return "n/a" if x is None else f"{x:.{nd}f}"


def table(r):
    n = r["frames_compared"]
    fps = lambda t: f"{n / t:.1f}" if t > 0 else "n/a"
    L = []
    L.append(f"### {r['name']} (`--detect-interval {r['interval']}`)")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| resolution | {r['resolution']} @ {r['fps']:.2f} fps |")
    kinds = [k for k in ["orig", "anon", "right", "wrong", "sidecar", "fallback", "rtsp"] if k in r["frame_counts"]]
    L.append(f"| frames ({' / '.join(kinds)}) | " + " / ".join(str(r["frame_counts"][k]) for k in kinds) + " |")
    L.append(f"| recorded crops (sidecar), face-frames measured | {r['crops']}, {r['face_crops_measured']} |")
    L.append(f"| frames carrying faceveil SEI in the anonymized clip | {r['sei_records']} |")
    L.append(f"| faces seen by CenterFace in the original (face-frames) | {r['faces_seen']} |")
    L.append(f"| leaked face-frames | {r['leaked']}"
             + (f" (box sizes {min(r['leak_sizes']):.0f}-{max(r['leak_sizes']):.0f} px, median "
                f"{float(np.median(r['leak_sizes'])):.0f})" if r["leak_sizes"] else "") + " |")
    L.append(f"| leak rate (frames with any leak / frames) | {r['frames_leak']} / {n} = "
             f"{100.0 * r['frames_leak'] / max(1, n):.1f}% |")
    tc = r["temporal_change"]
    L.append(f"| flicker: mean frame-to-frame change in the face regions, anonymized / original (0-255) | "
             f"{fmt(tc['anon'], 2)} / {fmt(tc['orig'], 2)} |")
    L.append("")
    L.append("| face region (weight-1 ellipse), vs original | PSNR mean dB | PSNR p10 dB | SSIM mean | SSIM p10 | background PSNR dB |")
    L.append("|---|---|---|---|---|---|")
    for k, label in r["variants"]:
        m = r["metrics"][k]
        p, s = m["psnr"] or (None, None), m["ssim"] or (None, None)
        L.append(f"| {label} | {fmt(p[0], 2)} | {fmt(p[1], 2)} | {fmt(s[0], 4)} | {fmt(s[1], 4)} | "
                 f"{fmt(r['bg_psnr'][k], 2)} |")
    L.append("")
    L.append("| step | wall time s | fps |")
    L.append("|---|---|---|")
    for k, t in r["times"].items():
        L.append(f"| {k} | {t:.1f} | {fps(t)} |")
    if r["notes"]:
        L.append("")
        for note in r["notes"]:
            L.append(f"Note: {note}.")
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--detect-interval", type=int, action="append",
                    help="repeat to run several intervals (default 1)")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "roundtrip"))
    ap.add_argument("--max-frames", type=int, default=0, help="trim longer clips to this many frames")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "faceveil"))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "ROUNDTRIP.md"))
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--variant", default=None, help="SDN variant to anonymize with (default: the model's default)")
    ap.add_argument("--rtsp", action="store_true", help="also serve each anonymized clip over RTSP and restore from the stream")
    ap.add_argument("--reuse", action="store_true",
                    help="take a clip's result.json from --out if an earlier run left one (same binary snapshot)")
    args = ap.parse_args()
    intervals = args.detect_interval or [1]
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} missing: run cargo build --release")
    # Snapshot the binary: others may rebuild target/release/faceveil during a long run.
    import hashlib
    os.makedirs(args.out, exist_ok=True)
    snap = os.path.join(args.out, "faceveil-snapshot")
    if not (args.reuse and os.path.exists(snap)):
        shutil.copy2(args.bin, snap)
    with open(snap, "rb") as f:
        bin_sha = hashlib.sha256(f.read()).hexdigest()
    bin_mtime = datetime.datetime.fromtimestamp(os.path.getmtime(snap), datetime.timezone.utc)
    args.bin = snap
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD")
    dirty = [l[3:] for l in git("status", "--porcelain", "--", "src", "plugins", "cli", "Cargo.toml", "Cargo.lock",
                                "build.rs").splitlines()]
    with open(os.path.join(ROOT, "models", "sdn", "sdn.json")) as f:
        sdn = json.load(f)

    variant = args.variant or sdn["default_variant"]

    def model_shas():
        out = {}
        for fn in (sdn["variants"][variant]["anonymize"], sdn["variants"][variant]["restore"]):
            with open(os.path.join(ROOT, "models", "sdn", fn), "rb") as f:
                out[fn] = hashlib.sha256(f.read()).hexdigest()
        return out
    shas_start = model_shas()
    blend = sdn["blend"]
    detector = Detector()
    with open("/proc/loadavg") as f:
        load_start = " ".join(f.read().split()[:3])
    t_start = time.monotonic()
    results = []
    for clip in args.clips:
        for interval in intervals:
            print(f"== {clip} --detect-interval {interval}", file=sys.stderr, flush=True)
            prev_json = os.path.join(args.out, f"{os.path.splitext(os.path.basename(clip))[0]}_di{interval}",
                                     "result.json")
            if args.reuse and os.path.exists(prev_json):
                with open(prev_json) as f:
                    r = json.load(f)
                r["notes"].append("measured by an earlier invocation of this script into the same --out "
                                  "(--reuse); its time is not in this run's total")
            else:
                t_clip = time.monotonic()
                r = process(clip, interval, args, blend, detector)
                r["seconds"] = time.monotonic() - t_clip
                with open(os.path.join(args.out, f"{r['name']}_di{interval}", "result.json"), "w") as f:
                    json.dump(r, f, indent=1)
            results.append(r)
            print(table(r), flush=True)
    total = time.monotonic() - t_start
    shas_end = model_shas()
    if args.no_doc:
        return
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    py = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else "python3"
    cmd = f"nice -n 10 {py} " + " ".join(shlex.quote(a) for a in
                                              [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    v = sdn["variants"][variant]
    L = ["# SDN round trip: anonymize, restore, leak check", ""]
    L.append(f"Produced by `scripts/roundtrip.py` on {datetime.date.today().isoformat()} with")
    L.append("")
    L.append(f"```sh\n{cmd}\n```")
    L.append("")
    L.append(f"run from the repository root on a machine with `nproc` = {os.cpu_count()} ({cpu}, "
             f"{platform.system()} {platform.machine()}), load average at the start {load_start}; "
             f"every process ran under `nice -n 10`, the script's own NumPy/OpenCV/ONNX Runtime "
             f"work single-threaded. The whole run took {total / 60:.1f} min. Model: "
             f"`{sdn['model_id']}` variant `{variant}`"
             + (f" (of {len(sdn['variants'])}: {', '.join(sdn['variants'])})" if len(sdn['variants']) > 1
                else " (its only variant)")
             + (f", {v.get('architecture')}" if v.get('architecture') else "")
             + (f", {v['trained_steps']} training steps, {v.get('trained_minutes')} min" if v.get('trained_steps')
                else "")
             + (f", fitted in {v['fit']['seconds']:.0f} s" if isinstance(v.get('fit'), dict)
                and v['fit'].get('seconds') else "")
             + f". Blend ellipse from `models/sdn/sdn.json`: "
             f"axis_x {blend['axis_x']}, axis_y {blend['axis_y']}, feather {blend['feather']}.")
    L.append("")
    L.append(f"Binary: `target/release/faceveil` as built at {bin_mtime:%Y-%m-%d %H:%M} UTC (sha256 "
             f"`{bin_sha[:16]}...`, copied before the run so that a rebuild could not change it midway), "
             f"repository at commit `{head}`"
             + (f" with uncommitted changes in {', '.join('`' + x + '`' for x in dirty)}" if dirty
                else " with no uncommitted changes to the Rust sources") + ".")
    L.append("")
    L.append("Model files at the start of the run: "
             + ", ".join(f"`{k}` sha256 `{v[:16]}...`" for k, v in shas_start.items())
             + ("; they were unchanged at the end." if shas_start == shas_end else
                "; they CHANGED during the run (a training job replaced them), so clips may have "
                "used different weights.")
             + " The anonymized clips' headers name model sha256 "
             + ", ".join(sorted({f"`{(r.get('model_sha256') or '?')[:16]}...`" for r in results})) + ".")
    L.append("")
    L.append("What is measured, per clip:")
    L.append("")
    L.append("- `faceveil anonymize` with password A (x264 CRF 23 output; each frame's crops ride in the "
             "H.264 stream as SEI and in a `.faceveil` sidecar), then `faceveil restore` with A (right) "
             "and with B (wrong) on that clip (the CLI takes crops from the SEI first); then, on a copy "
             "whose faceveil SEI is disabled (its 16-byte UUID overwritten in place, pixels untouched): "
             "restore with A and `--sidecar` (crops from the sidecar), and restore with A and only "
             "`--header` (the sidecar's first line), i.e. the detection fallback that finds the faces "
             "again in the anonymized frames. Times are wall clock of each CLI call, decode and encode "
             "included.")
    L.append("- Face-region metrics for every recorded crop of every frame, over the crop's inner region "
             "(blend weight 1: inside the ellipse at radius 1 - feather), comparing each decoded clip with "
             "the decoded original: PSNR over RGB, SSIM on luma (BT.601, gaussian 11x11, sigma 1.5, "
             f"averaged over the region). Mean and 10th percentile over all face-frames; identical regions "
             f"would count as {PSNR_CAP:.0f} dB. \"Background PSNR\" is over all pixels outside every crop "
             "square, as a reference for what the re-encode alone costs.")
    if args.rtsp:
        L.append("- RTSP: `faceveil anonymize CLIP --serve-rtsp PORT` (the clip played in real time, "
                 "anonymized, encoded by the server's x264 in its live settings, faceveil SEI in the stream) and "
                 "`faceveil restore rtsp://127.0.0.1:PORT/faceveil` with A, which takes the header and the "
                 "crops from the stream's SEI; measured over the same face regions as the file run (the "
                 "server detects the same faces in the same frames).")
    L.append("- Flicker: the mean absolute change from one frame to the next inside each face region, "
             "in the anonymized clip and, over the same regions, in the original.")
    L.append("- Leak check: CenterFace (`deps/centerface/centerface.onnx`) on every ORIGINAL frame at full "
             "resolution (padded to multiples of 32; threshold 0.5, NMS 0.3; the CLI itself detects on "
             "frames downscaled to 640 px with threshold 0.4). A detected face is leaked in a frame unless "
             "a recorded crop has the box centre inside its ellipse at blend weight >= 0.5 and holds at "
             "least 80% of the box area inside its square. Leak rate = frames with any leaked face / frames.")
    L.append("")
    L.append("Clips: `samples/faces_720p.mp4` and `samples/two_faces_640x360.mp4` are in the repository "
             "(synthetic, from one public-domain photo). The `../shared/data/videos/` clips are "
             "third-party footage that is NOT in the repository; to reproduce those rows you need the same "
             "files.")
    L.append("")
    notes = [n for r in results for n in r["notes"]]
    if not notes:
        L.append("No clip was trimmed; all frame counts matched.")
        L.append("")
    L.append("## Summary")
    L.append("")
    L.append("Face region (weight-1 ellipse) PSNR against the original, mean over face-frames, dB; "
             "leak rate and flicker as in the per-clip tables below.")
    L.append("")
    has_rtsp = any("rtsp" in r["metrics"] for r in results)
    hdr = ["clip", "anonymized", "restored, right password (x264 CRF 23)"] + \
          (["restored through RTSP"] if has_rtsp else []) + \
          ["restored, wrong password", "detection fallback", "leak rate", "flicker anonymized / original"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for r in results:
        def m(k):
            ps = (r["metrics"].get(k) or {}).get("psnr")
            return fmt(ps[0] if ps else None, 2)
        n = r["frames_compared"]
        tc = r["temporal_change"]
        ratio = (tc["anon"] / tc["orig"]) if tc["anon"] is not None and tc["orig"] else None
        row = [r["name"], m("anon"), m("right")] + ([m("rtsp")] if has_rtsp else []) + \
              [m("wrong"), m("fallback"),
               f"{r['frames_leak']} / {n} = {100.0 * r['frames_leak'] / max(1, n):.1f}%",
               f"{fmt(tc['anon'], 2)} / {fmt(tc['orig'], 2)} ({fmt(ratio, 2)}x)"]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("## Results")
    L.append("")
    for r in results:
        L.append(table(r))
    L.append("## Reading the numbers")
    L.append("")
    L.append("_(Add a hand-written reading of these numbers here.)_")
    L.append("")
    os.makedirs(os.path.dirname(args.doc), exist_ok=True)
    with open(args.doc, "w") as f:
        f.write("\n".join(L))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
