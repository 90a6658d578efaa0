#!/usr/bin/env python3
"""(Re)creates the redistributable sample media in samples/ from one public-domain photo.

Source: "astronaut.png" from scikit-image's data folder (skimage/data/astronaut.png): NASA portrait
of astronaut Eileen Collins, a work of the US federal government and so in the public domain.

Outputs (all deterministic for given versions of numpy, OpenCV and GStreamer/x264):
  samples/astronaut.jpg          the photo, JPEG quality 90 (one face)
  samples/faces_720p.mp4         1280x720, 30 fps, 6 s, H.264 (x264 CRF 26, yuv420p) + AAC sine
  samples/two_faces_640x360.mp4  640x360, 25 fps, 4 s, same encoding

Each clip is a neutral textured background with two faces that never overlap:
  * the photo (head and shoulders) as a print that slides and zooms slowly (Ken Burns);
  * a mirrored cut-out of the head (feathered ellipse) on another path, over the background.

Usage:
  nice -n 10 python3 scripts/make_samples.py [--source astronaut.png] [--out samples] [--check]

Without --source the photo is taken from an installed scikit-image, or else extracted from the
scikit-image 0.26.0 wheel, fetched with `pip download --no-deps scikit-image==0.26.0` into
/tmp/wh unless a wheel is already there. The photo's SHA-256 is checked.

--check decodes a few frames of each clip with OpenCV and runs CenterFace
(deps/centerface/centerface.onnx) on them, printing the heatmap peaks and where they are.
Needs gst-launch-1.0 with x264enc, voaacenc, mp4mux (GStreamer 1.22 base/good/ugly/bad).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

cv2.setNumThreads(1)

ROOT = Path(__file__).resolve().parent.parent
PHOTO_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
SKIMAGE_WHEEL = "scikit-image==0.26.0"
WHEEL_DIR = Path("/tmp/wh")

# Geometry of the source photo (512x512), found with CenterFace on the original:
# face box centre (226, 118), about 88 px wide and 120 px high.
FACE_SRC = (226.0, 118.0)
CARD_SRC = (76, 0, 376, 340)  # head-and-shoulders crop x0, y0, x1, y1
HEAD_ELLIPSE = ((226.0, 100.0), (73.0, 92.0))  # centre, semi-axes of the cut-out head


# --------------------------------------------------------------------------------------------
# source photo
# --------------------------------------------------------------------------------------------
def load_photo(source: str | None) -> np.ndarray:
    """Returns the photo as RGB uint8, verifying it is the expected file."""
    if source is None:
        data = None
        try:
            import skimage  # noqa: F401

            path = Path(skimage.__file__).parent / "data" / "astronaut.png"
            if path.is_file():
                data = path.read_bytes()
        except ImportError:
            pass
        if data is None:
            wheels = sorted(glob.glob(str(WHEEL_DIR / "scikit_image-0.26.0-*.whl")))
            if not wheels:
                subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", SKIMAGE_WHEEL,
                     "-d", str(WHEEL_DIR)], check=True)
                wheels = sorted(glob.glob(str(WHEEL_DIR / "scikit_image-0.26.0-*.whl")))
            with zipfile.ZipFile(wheels[0]) as z:
                data = z.read("skimage/data/astronaut.png")
    else:
        data = Path(source).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PHOTO_SHA256:
        sys.exit(f"astronaut.png has SHA-256 {digest}, expected {PHOTO_SHA256}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
def background(w: int, h: int, seed: int) -> np.ndarray:
    """Neutral warm-grey backdrop: soft cloudy low-frequency variation, faint linen weave, grain."""
    rng = np.random.default_rng(seed)
    base = np.array([148.0, 144.0, 137.0], np.float32)
    low = rng.standard_normal((h // 48 + 3, w // 48 + 3)).astype(np.float32)
    low = cv2.resize(low, (w + 96, h + 96), interpolation=cv2.INTER_CUBIC)[48:48 + h, 48:48 + w]
    low = cv2.GaussianBlur(low, (0, 0), 24)
    low /= max(1e-6, float(np.abs(low).max()))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weave = 0.5 * (np.sin(xx * 0.9) * np.sin(yy * 0.9))
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
    vignette = 1.0 - 0.18 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    lum = 14.0 * low + 2.0 * weave + 2.5 * grain
    img = (base[None, None, :] + lum[..., None]) * vignette[..., None]
    return img.astype(np.float32)


@dataclass
class Sprite:
    """A premultiplied RGBA layer in its own pixel coordinates, and the anchor point (the face
    centre) that the motion path places on screen."""

    rgba: np.ndarray  # float32 HxWx4, rgb premultiplied by alpha
    anchor: tuple[float, float]
    shadow: np.ndarray | None = None  # float32 HxW alpha of a soft drop shadow, same coordinates
    pad: int = 0

    def warp(self, scale: float, at: tuple[float, float], size: tuple[int, int],
             shadow_offset: tuple[float, float] = (0.0, 0.0)):
        ax, ay = self.anchor
        m = np.array([[scale, 0.0, at[0] - scale * ax], [0.0, scale, at[1] - scale * ay]],
                     np.float32)
        fg = cv2.warpAffine(self.rgba, m, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        sh = None
        if self.shadow is not None:
            ms = m.copy()
            ms[:, 2] += shadow_offset
            sh = cv2.warpAffine(self.shadow, ms, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return fg, sh


def card_sprite(photo: np.ndarray, ref_scale: float) -> Sprite:
    """The head-and-shoulders crop as an opaque print with a soft shadow, pre-scaled to ref_scale
    (so later warps only rescale by a factor near 1)."""
    x0, y0, x1, y1 = CARD_SRC
    crop = photo[y0:y1, x0:x1].astype(np.float32)
    w, h = round((x1 - x0) * ref_scale), round((y1 - y0) * ref_scale)
    interp = cv2.INTER_AREA if ref_scale < 1 else cv2.INTER_CUBIC
    crop = np.clip(cv2.resize(crop, (w, h), interpolation=interp), 0, 255)
    pad = max(8, round(24 * ref_scale))
    rgba = np.zeros((h + 2 * pad, w + 2 * pad, 4), np.float32)
    rgba[pad:pad + h, pad:pad + w, :3] = crop
    rgba[pad:pad + h, pad:pad + w, 3] = 1.0
    # thin light border, like a print
    b = max(1, round(3 * ref_scale))
    rgba[pad:pad + h, pad:pad + w][:b, :, :3] = 235
    rgba[pad:pad + h, pad:pad + w][-b:, :, :3] = 235
    rgba[pad:pad + h, pad:pad + w][:, :b, :3] = 235
    rgba[pad:pad + h, pad:pad + w][:, -b:, :3] = 235
    shadow = cv2.GaussianBlur(rgba[..., 3].copy(), (0, 0), max(2.0, 8 * ref_scale)) * 0.45
    anchor = (pad + (FACE_SRC[0] - x0) * ref_scale, pad + (FACE_SRC[1] - y0) * ref_scale)
    return Sprite(rgba, anchor, shadow, pad)


def head_sprite(photo: np.ndarray, ref_scale: float) -> Sprite:
    """The head cut out with a feathered ellipse, mirrored, pre-scaled to ref_scale."""
    (cx, cy), (ax, ay) = HEAD_ELLIPSE
    x0, x1 = int(cx - ax - 8), int(cx + ax + 8)
    y0, y1 = max(0, int(cy - ay - 8)), int(cy + ay + 8)
    crop = photo[y0:y1, x0:x1].astype(np.float32)
    mask = np.zeros(crop.shape[:2], np.float32)
    cv2.ellipse(mask, (round(cx - x0), round(cy - y0)), (round(ax), round(ay)), 0, 0, 360, 1.0, -1,
                cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0)
    crop = crop[:, ::-1].copy()
    mask = mask[:, ::-1].copy()
    w, h = round((x1 - x0) * ref_scale), round((y1 - y0) * ref_scale)
    interp = cv2.INTER_AREA if ref_scale < 1 else cv2.INTER_CUBIC
    crop = np.clip(cv2.resize(crop, (w, h), interpolation=interp), 0, 255)
    mask = np.clip(cv2.resize(mask, (w, h), interpolation=interp), 0, 1)
    rgba = np.dstack([crop * mask[..., None], mask]).astype(np.float32)
    mirrored_face_x = (x1 - x0) - (FACE_SRC[0] - x0)
    anchor = (mirrored_face_x * ref_scale, (FACE_SRC[1] - y0) * ref_scale)
    return Sprite(rgba, anchor)


def over(dst: np.ndarray, fg: np.ndarray) -> None:
    a = fg[..., 3:4]
    dst *= 1.0 - a
    dst += fg[..., :3]


def smooth(t: float) -> float:
    """Smootherstep easing on [0, 1]."""
    t = min(1.0, max(0.0, t))
    return t * t * t * (t * (6 * t - 15) + 10)


# --------------------------------------------------------------------------------------------
# clips
# --------------------------------------------------------------------------------------------
@dataclass
class ClipSpec:
    name: str
    width: int
    height: int
    fps: int
    seconds: int
    card_scale: tuple[float, float]  # photo scale at start, end (face box height = 120 x scale)
    card_face: tuple[tuple[float, float], tuple[float, float]]  # face centre at start, end
    head_scale: float  # scale of the mirrored head (face box height = 120 x scale)
    head_x: tuple[float, float]  # centre x, sway amplitude
    head_y: tuple[float, float]  # centre y at start, end
    seed: int

    @property
    def frames(self) -> int:
        return self.fps * self.seconds


CLIPS = [
    ClipSpec("faces_720p.mp4", 1280, 720, 30, 6,
             card_scale=(1.40, 1.85), card_face=((300.0, 250.0), (660.0, 420.0)),
             head_scale=0.92, head_x=(1135.0, 40.0), head_y=(150.0, 570.0), seed=720),
    ClipSpec("two_faces_640x360.mp4", 640, 360, 25, 4,
             card_scale=(0.72, 0.92), card_face=((150.0, 125.0), (330.0, 210.0)),
             head_scale=0.70, head_x=(575.0, 8.0), head_y=(88.0, 285.0), seed=360),
]


def check_layout(spec: ClipSpec, card: Sprite, s: float, card_at, head: Sprite, head_at) -> None:
    """Asserts that both faces are fully inside the frame and that the two layers (print with its
    shadow, cut-out head) never touch."""
    def face_box(at, scale):
        w, h = 88 * scale, 120 * scale  # CenterFace box of the original face
        return at[0] - w / 2, at[1] - h / 2, at[0] + w / 2, at[1] + h / 2

    def sprite_box(sp: Sprite, at, k, margin):
        ax, ay = sp.anchor
        hh, ww = sp.rgba.shape[:2]
        return (at[0] - k * ax - margin, at[1] - k * ay - margin,
                at[0] + k * (ww - ax) + margin, at[1] + k * (hh - ay) + margin)

    for box in (face_box(card_at, s), face_box(head_at, spec.head_scale)):
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= spec.width and box[3] <= spec.height, box
    a = sprite_box(card, card_at, s / spec.card_scale[1], 6.0 * s)  # print + shadow offset
    b = sprite_box(head, head_at, 1.0, 0.0)
    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def render(spec: ClipSpec, photo: np.ndarray):
    """Yields the clip's frames as RGB uint8, and records the face centres in spec.paths."""
    size = (spec.width, spec.height)
    bg = background(spec.width, spec.height, spec.seed)
    card = card_sprite(photo, spec.card_scale[1])
    head = head_sprite(photo, spec.head_scale)
    n = spec.frames
    paths = []
    for i in range(n):
        u = i / (n - 1)
        e = smooth(u)
        s = spec.card_scale[0] + (spec.card_scale[1] - spec.card_scale[0]) * e
        (fx0, fy0), (fx1, fy1) = spec.card_face
        card_at = (fx0 + (fx1 - fx0) * e, fy0 + (fy1 - fy0) * e)
        head_at = (spec.head_x[0] + spec.head_x[1] * np.sin(2 * np.pi * u),
                   spec.head_y[0] + (spec.head_y[1] - spec.head_y[0]) * (0.5 - 0.5 * np.cos(np.pi * u)))
        frame = bg.copy()
        off = 6.0 * s
        fg, sh = card.warp(s / spec.card_scale[1], card_at, size, (off, off * 1.3))
        frame *= 1.0 - sh[..., None]
        over(frame, fg)
        fg, _ = head.warp(1.0, head_at, size)
        over(frame, fg)
        check_layout(spec, card, s, card_at, head, head_at)
        paths.append((card_at, 120 * s, head_at, 120 * spec.head_scale))
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    spec.paths = paths  # type: ignore[attr-defined]


MP4_TIME = 3786912000  # 2024-01-01T00:00:00Z in seconds since 1904-01-01, the MP4 epoch


def pin_mp4_times(path: Path, when: int = MP4_TIME) -> int:
    """mp4mux stamps the wall-clock time into the mvhd/tkhd/mdhd boxes; overwrite those creation
    and modification times with a fixed date so that the files are byte-for-byte reproducible.
    Returns the number of boxes patched."""
    data = bytearray(path.read_bytes())
    patched = 0

    def walk(start: int, end: int) -> None:
        nonlocal patched
        pos = start
        while pos + 8 <= end:
            size = int.from_bytes(data[pos:pos + 4], "big")
            kind = bytes(data[pos + 4:pos + 8])
            header = 8
            if size == 1:
                size = int.from_bytes(data[pos + 8:pos + 16], "big")
                header = 16
            elif size == 0:
                size = end - pos
            if size < header or pos + size > end:
                raise ValueError(f"bad MP4 box {kind!r} at {pos} in {path}")
            body = pos + header
            if kind in (b"moov", b"trak", b"mdia"):
                walk(body, pos + size)
            elif kind in (b"mvhd", b"tkhd", b"mdhd"):
                if data[body] == 1:
                    data[body + 4:body + 20] = when.to_bytes(8, "big") * 2
                else:
                    data[body + 4:body + 12] = when.to_bytes(4, "big") * 2
                patched += 1
            pos += size

    walk(0, len(data))
    path.write_bytes(bytes(data))
    return patched


def encode(spec: ClipSpec, photo: np.ndarray, out: Path) -> None:
    tmp = out.with_suffix(".part.mp4")
    spb = 48000 // spec.fps  # one audio buffer per video frame: exact same duration
    pipeline = (
        f"fdsrc fd=0 blocksize={spec.width * spec.height * 3} "
        f"! rawvideoparse format=rgb width={spec.width} height={spec.height} "
        f"framerate={spec.fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420,colorimetry=bt709 "
        f"! x264enc pass=qual quantizer=26 speed-preset=medium threads=1 "
        f"key-int-max={2 * spec.fps} "
        f"! video/x-h264,profile=high ! h264parse ! queue ! mux. "
        f"audiotestsrc wave=sine freq=220 volume=0.1 is-live=false "
        f"samplesperbuffer={spb} num-buffers={spec.frames} "
        f"! audio/x-raw,rate=48000,channels=2 ! audioconvert "
        f"! voaacenc bitrate=64000 ! aacparse ! queue ! mux. "
        f"mp4mux name=mux faststart=true ! filesink location={tmp}"
    )
    proc = subprocess.Popen(["gst-launch-1.0", "-q", *pipeline.split()], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for frame in render(spec, photo):
            proc.stdin.write(frame.tobytes())
    except BaseException:
        proc.kill()
        proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit(f"gst-launch-1.0 failed for {out.name}")
    if pin_mp4_times(tmp) < 5:  # mvhd + tkhd and mdhd of both tracks
        sys.exit(f"could not find the MP4 header boxes of {out.name}")
    os.replace(tmp, out)


def check_faces(path: Path, spec: ClipSpec | None, picks: list[int]) -> None:
    """Runs CenterFace on a few frames of a clip (or on an image) and prints heatmap peaks."""
    import onnxruntime as ort

    model = ROOT / "deps" / "centerface" / "centerface.onnx"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    def detect(rgb: np.ndarray):
        h, w = rgb.shape[:2]
        hp, wp = (h + 31) // 32 * 32, (w + 31) // 32 * 32
        x = np.zeros((1, 3, hp, wp), np.float32)
        x[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        # Graph inputs other than the image (BatchNorm counters in an unpatched export) get zeros.
        feed = {i.name: (x if i.name == "input.1" else np.zeros((), np.int64))
                for i in sess.get_inputs()}
        hm, scale, offset = sess.run(["537", "538", "539"], feed)
        hm = hm[0, 0]
        peaks = (hm == cv2.dilate(hm, np.ones((3, 3), np.float32))) & (hm > 0.3)
        found = []
        for gy, gx in zip(*np.nonzero(peaks)):
            fh = float(np.exp(scale[0, 0, gy, gx]) * 4)
            fw = float(np.exp(scale[0, 1, gy, gx]) * 4)
            cy = float((gy + offset[0, 0, gy, gx] + 0.5) * 4)
            cx = float((gx + offset[0, 1, gy, gx] + 0.5) * 4)
            found.append((float(hm[gy, gx]), cx, cy, fw, fh))
        return sorted(found, reverse=True)

    if spec is None:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        report = "; ".join(f"peak {p:.3f} at ({cx:.0f},{cy:.0f}) box {fw:.0f}x{fh:.0f}"
                           for p, cx, cy, fw, fh in detect(rgb))
        print(f"{path.name}: {report}")
        return
    cap = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if count in picks:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found = detect(rgb)
            report = "; ".join(f"peak {p:.3f} at ({cx:.0f},{cy:.0f}) box {fw:.0f}x{fh:.0f}"
                               for p, cx, cy, fw, fh in found)
            print(f"{path.name} frame {count:3d}: {len(found)} face(s): {report}")
        count += 1
    print(f"{path.name}: {count} frames decoded (expected {spec.frames})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", help="path to skimage's astronaut.png")
    ap.add_argument("--out", default=str(ROOT / "samples"), help="output folder")
    ap.add_argument("--check", action="store_true", help="run CenterFace on a few frames")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = load_photo(args.source)

    jpg = out / "astronaut.jpg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    jpg.write_bytes(buf.tobytes())
    print(f"wrote {jpg} ({jpg.stat().st_size} bytes)")
    for spec in CLIPS:
        path = out / spec.name
        encode(spec, photo, path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
        for i in (0, spec.frames // 2, spec.frames - 1):
            card_at, card_h, head_at, head_h = spec.paths[i]  # type: ignore[attr-defined]
            print(f"  frame {i:3d}: photo face at ({card_at[0]:.0f},{card_at[1]:.0f}) ~{card_h:.0f} px"
                  f" high; mirrored head face at ({head_at[0]:.0f},{head_at[1]:.0f})"
                  f" ~{head_h:.0f} px high (nominal: 120 px x scale)")
    if args.check:
        check_faces(jpg, None, [])
        for spec in CLIPS:
            n = spec.frames
            check_faces(out / spec.name, spec, [0, n // 4, n // 2, 3 * n // 4, n - 1])


if __name__ == "__main__":
    main()
