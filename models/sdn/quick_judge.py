"""A quick dlib check of a model on held-out faces, per key (worst and mean over keys).

    OMP_NUM_THREADS=1 deps/sdn-venv/bin/python models/sdn/quick_judge.py [--model-dir models/sdn]
        [--variant NAME] [--n 150] [--keys 10] [--out models/sdn/runs/judge.json]
    ... --numpy [--alpha 1.0]      the facespace.py reference instead of the ONNX graphs
    ... --grey                      the faces made grey first (an infrared camera's night picture)
    ... --per-face-keys             a key vector per face under each key index, as the runtime's
                                    default per-track keying gives every face of a stream
    ... --numpy --example-detail 0.25   the candidate of example_detail.py (keyed example detail over
                                    the surrogate's low band, its own detail shuffled under it at 0.25)

This is the model fitter's loop, not the project's evaluation (eval.py): dlib is the judge only
(never used in fitting). Faces: n held-out CelebA crops of models/sdn/data (at most 4 per
identity). The stored 144 px crop is the frame: the model's 128 crop output is quantised to uint8
and blended into it with the sdn.json ellipse, as the runtime does. dlib's 5-point shape on the
known box and its 128-d ResNet; distance < 0.6 = same person. Per key:
  same     anonymized judged the original
  found    dlib's HOG detector (1x upsampling) finds a face overlapping the box (IoU > 0.3)
  two      two keys give two identities (distance >= 0.6), key i against key i+1
  pair     two different held-out people under one key stay two surrogates
  wrong_same / wrong_diff   restore with a wrong key: judged the original / differs from the surrogate
  psnr     restore (right key) from the uint8 image, over the blend ellipse, dB
  gamut    share of central-face pixels (box scaled 0.7) outside the originals' Lab a*b* gamut
  rim_gamut, rim_shift   the same on the rim (the blend ellipse at weight >= 0.5 outside the
           central face) against the originals' rims' gamut; the mean Lab a*b* distance there
           from the original (the coloured fringes where the change meets hair and outline)
Attacks (numpy model only): negated / doubled identity coordinates of the surrogate, and the
mean of the surrogates under all keys, judged against the original.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from centerface import blend_mask  # noqa: E402


class Judge:
    def __init__(self):
        import dlib
        import face_recognition_models as frm
        self.dlib = dlib
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.det = dlib.get_frontal_face_detector()

    def desc(self, img, box):
        r = self.dlib.rectangle(*[int(round(v)) for v in box])
        return np.array(self.rec.compute_face_descriptor(img, self.sp(img, r), 0))

    def descs(self, frames, boxes):
        """Descriptors of frames[i] at boxes[i], stacked [N,128]."""
        return np.stack([self.desc(f, b) for f, b in zip(frames, boxes)])

    def found(self, img, box):
        for d in self.det(img, 1):
            a = [d.left(), d.top(), d.right(), d.bottom()]
            ix = max(0, min(a[2], box[2]) - max(a[0], box[0]))
            iy = max(0, min(a[3], box[3]) - max(a[1], box[1]))
            inter = ix * iy
            u = (a[2] - a[0]) * (a[3] - a[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
            if inter / u > 0.3:
                return True
        return False


def blend_crops(frames, c128, m, off):
    """Model crops [N,3,128,128] (-1..1) -> uint8 frames [N,S,S,3]: the stored frames with the crops
    blended in at `off` through the ellipse weights m [128,128,1], as the runtime blends."""
    u8 = np.clip(np.rint((c128.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255)
    f = frames.astype(np.float32).copy()
    f[:, off:off + 128, off:off + 128] = f[:, off:off + 128, off:off + 128] * (1 - m) + u8 * m
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def lab_ab(img_u8):
    """RGB pixels (an image, or a list of pixels [n,3]) -> their Lab a*, b* [n,2]."""
    lab = cv2.cvtColor(img_u8.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    return lab[..., 1:].reshape(-1, 2)


def gamut_hist(ab):
    h, _, _ = np.histogram2d(ab[:, 0], ab[:, 1], 32, [[-128, 128], [-128, 128]])
    return h


def outside(ab, gam):
    i = np.clip(((ab + 128) / 8).astype(int), 0, 31)
    return float((~gam[i[:, 0], i[:, 1]]).mean())


def age_probe(args, lab):
    """Ridge regression of UTKFace age on 32x32 central crops of the fitting split (independent of
    the face space); returns (predict(frames uint8 [n,S,S,3]), mean abs error on held-out UTKFace)."""
    from sklearn.linear_model import Ridge
    files = lab["files"]
    utk = np.nonzero(lab["source"] == "utkface")[0]
    age = np.array([int(os.path.basename(f).split("_")[0]) for f in files[utk]], np.float64)
    S = int(lab["store"])

    def feats(imgs):
        return np.stack([cv2.resize(im[S // 4:3 * S // 4, S // 4:3 * S // 4], (32, 32), interpolation=cv2.INTER_AREA)
                         for im in imgs]).reshape(len(imgs), -1).astype(np.float32) / 255

    # Read one at a time, not stacked: 9,780 frames would be 0.6 GB at once.
    X = feats([np.load(os.path.join(args.data, f"shard_{lab['shard'][i]:03d}.npy"), mmap_mode="r")[lab["index"][i]] for i in utk])
    tr = lab["split"][utk] == 0
    r = Ridge(alpha=10.0).fit(X[tr], age[tr])
    mae = float(np.abs(r.predict(X[~tr]) - age[~tr]).mean())
    return (lambda imgs: r.predict(feats(imgs))), mae


def tone_age(args, lab, frames, anons, cen):
    pred, mae = age_probe(args, lab)
    a0 = pred(frames)
    L0 = np.stack([cv2.cvtColor(frames[i][cen[i]].astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)
                   for i in range(len(frames))])
    dl, dage = [], []
    for F in anons:
        L1 = np.stack([cv2.cvtColor(F[i][cen[i]].astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)
                       for i in range(len(F))])
        dl.append(np.abs(L1 - L0).mean(0))
        dage.append(np.abs(pred(F) - a0).mean())
    dl = np.mean(dl, 0)
    return dict(mean_abs_dL=float(dl[0]), mean_abs_da=float(dl[1]), mean_abs_db=float(dl[2]),
                age_probe_mae_heldout_utk=mae, mean_abs_dage_probe=float(np.mean(dage)),
                age_probe_spread_originals=float(a0.std()))


def numpy_model(args):
    """The facespace.py reference that --numpy judges (--npz, else the model folder's, with the
    grey face space beside it or --grey-npz), with --alpha."""
    from facespace import GreyAndColour
    over = {} if args.alpha is None else {"alpha": np.array(args.alpha)}
    return GreyAndColour.load(args.npz or args.model_dir, grey_npz=args.grey_npz, **over)


def sessions(args, variant, *graphs):
    """One-thread onnxruntime sessions of the variant's graphs ("anonymize", "restore")."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return [ort.InferenceSession(os.path.join(args.model_dir, variant[g]), so, providers=["CPUExecutionProvider"]) for g in graphs]


def flicker(args, meta, clip, key, max_frames=150):
    """One face track (the largest CenterFace face of every frame, the contract's crop, no landmarks
    fed, as the runtime does now): mean absolute frame-to-frame change of the anonymized crop inside
    the blend ellipse against that of the original crop (grey levels)."""
    from centerface import CenterFace, crop, crop_params
    if args.numpy:  # the facespace.py reference (mean landmarks, as the graphs use them)
        fs = numpy_model(args)
        run = lambda xin: fs.anonymize(xin.astype(np.float64), fs.mean_landmarks[None], key[None].astype(np.float64))  # noqa: E731
    else:
        sa, = sessions(args, meta["variants"][meta["default_variant"]], "anonymize")
        zeros = np.zeros((1, 6), np.float32)
        run = lambda xin: sa.run(["image_out"], {"image": xin, "key": key[None], "attributes": zeros})[0]  # noqa: E731
    cf = CenterFace(threads=1)
    c = meta["crop"]
    m = blend_mask(128, **meta["blend"])[..., None]
    cap = cv2.VideoCapture(clip)
    orig, anon = [], []
    while len(orig) < max_frames:
        ok, fr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(fr, cv2.COLOR_BGR2RGB)
        d, _ = cf(rgb, 0.5)
        if len(d) == 0:
            orig.append(None)
            anon.append(None)
            continue
        b = d[int(np.argmax((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])))]
        cx, cy, side = crop_params(b, c["scale"], c["center_x"], c["center_y"])
        x = crop(rgb, cx, cy, side, 128)
        xin = (x.transpose(2, 0, 1)[None] / 127.5 - 1).astype(np.float32)
        y = run(xin)[0]
        orig.append(x)
        anon.append((y.transpose(1, 2, 0) + 1) * 127.5)
    d0, d1 = [], []
    for i in range(1, len(orig)):
        if orig[i] is None or orig[i - 1] is None:
            continue
        d0.append((np.abs(orig[i] - orig[i - 1]) * m).sum() / (m.sum() * 3))
        d1.append((np.abs(anon[i] - anon[i - 1]) * m).sum() / (m.sum() * 3))
    return dict(clip=os.path.basename(clip), pairs=len(d0), original=float(np.mean(d0)), anonymized=float(np.mean(d1)),
                ratio=float(np.mean(d1) / np.mean(d0)))


def write_md(path, r):
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    pair = ("two different people under one password (a key vector each, as per-track keying gives them) stay two"
            if r.get("per_face_keys") else "two different people under one key stay two")
    rows = [("judged the original person (dlib < 0.6)", "same", pct, "<= 1%"),
            ("found as a face (dlib HOG)", "found", pct, ">= 95%"),
            (pair, "pair", pct, ">= 95%"),
            ("central face outside the originals' Lab gamut", "gamut", pct, "<= 1%"),
            ("restore PSNR in the blend ellipse, from uint8 (dB)", "psnr", lambda v: f"{v:.2f}", ">= 35"),
            ("wrong key: judged the original", "wrong_same", pct, "<= 1%"),
            ("wrong key: a different identity from the surrogate", "wrong_diff", pct, ">= 95%")]
    out = [f"{r['model']}: {r['n']} held-out CelebA faces of {r['identities']} identities, {r['keys']} keys; "
           f"dlib judges another photo of the same person the same in {pct(r['judge_same_other_photo'])}, "
           f"finds {pct(r['found_original'])} of the originals; originals outside the gamut {pct(r['gamut_original'])}.", "",
           "| per key | worst | mean | target |", "|---|---|---|---|"]
    for name, k, f, t in rows:
        if k + "_worst" in r:
            out.append(f"| {name} | {f(r[k + '_worst'])} | {f(r[k + '_mean'])} | {t} |")
    out.append(f"| two keys give two identities (key i vs i+1) | {pct(r['two_keys_worst'])} | {pct(r['two_keys_mean'])} | >= 95% |")
    for k, v in r.get("attacks_same", {}).items():
        out.append(f"| key-free attack '{k}' judged the original | {pct(v)} | | no more than the surrogate |")
    ta = r.get("tone_age")
    if ta:
        out += ["", f"Tone and age (mean over faces and keys): |dL*| {ta['mean_abs_dL']:.2f}, |da*| {ta['mean_abs_da']:.2f}, "
                f"|db*| {ta['mean_abs_db']:.2f} on the central face; an age probe (ridge on 32 px crops, "
                f"{ta['age_probe_mae_heldout_utk']:.1f} years mean error on held-out UTKFace) moves by "
                f"{ta['mean_abs_dage_probe']:.1f} years on average (its spread over the originals: {ta['age_probe_spread_originals']:.1f})."]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def load(args):
    lab = np.load(os.path.join(args.data, "labels.npz"))
    lab = {k: lab[k] for k in lab.files}
    sel = np.nonzero((lab["split"] == 1) & (lab["identity"] >= 0))[0]
    rng = np.random.RandomState(7)
    rng.shuffle(sel)
    per = {}
    pick = []
    for i in sel:
        ident = lab["identity"][i]
        if per.get(ident, 0) < 4:
            per[ident] = per.get(ident, 0) + 1
            pick.append(i)
    pick = np.array(sorted(pick[: args.n]))
    S = int(lab["store"])
    frames = stored_frames(args.data, lab, pick)
    off = (S - 128) // 2
    return lab, pick, frames, np.array([known_box(lab["box"][i], S) for i in pick]), off


def stored_frames(data, lab, indices):
    """The stored frames of the crops at `indices` (prepare.py's shards), stacked."""
    return np.stack([np.load(os.path.join(data, f"shard_{lab['shard'][i]:03d}.npy"), mmap_mode="r")[lab["index"][i]]
                     for i in indices])


def known_box(b, S):
    """A face's detector box `b` in its stored S px frame, placed as the 128 crop frames it."""
    bw, bh = b[2] - b[0], b[3] - b[1]
    side = 1.3 * max(bw, bh)
    cx, cy = b[0] + 0.5 * bw, b[1] + 0.5 * bh
    return [(b[0] - cx) * 128 / side + S / 2, (b[1] - cy) * 128 / side + S / 2,
            (b[2] - cx) * 128 / side + S / 2, (b[3] - cy) * 128 / side + S / 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=HERE)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--numpy", action="store_true")
    ap.add_argument("--npz", default=None, help="with --numpy: this facespace .npz")
    ap.add_argument("--alpha", type=float, default=None, help="with --numpy: override the detail amplitude")
    ap.add_argument("--grey-npz", default=None, help="with --numpy: this grey face space (default: facespace_grey.npz "
                    "beside the colour one, where there is one)")
    ap.add_argument("--grey", action="store_true", help="the faces made grey first (BT.601 luma in all three channels), "
                    "as an infrared camera's night picture: judged against their grey originals")
    ap.add_argument("--example-detail", type=float, default=None, metavar="BETA",
                    help="with --numpy: example_detail.KeyedDetail over the face space, its own detail shuffled at BETA")
    ap.add_argument("--hide", default="blocks", choices=["blocks", "pixels"],
                    help="with --example-detail: shuffle the hidden detail's 8 px blocks, or the pixels inside each 4 px block")
    ap.add_argument("--learned-detail", default=None, metavar="ONNX",
                    help="with --example-detail: train_sr.py's detail.onnx draws the detail instead of the bank")
    ap.add_argument("--donor-mix", type=float, default=None, metavar="EPS",
                    help="with --numpy: donor_mix.DonorMix, the key's bank face under the rotated face at EPS")
    ap.add_argument("--no-landmarks", action="store_true", help="do not feed landmarks (mean shape)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--sheet", default=None, help="write a PNG contact sheet here")
    ap.add_argument("--md", default=None, help="also write the summary as a markdown table here")
    ap.add_argument("--quick", action="store_true", help="anonymize only (no restore, wrong key, attacks)")
    ap.add_argument("--flicker", nargs="*", default=None, help="clips: frame-to-frame change of one track, then exit")
    ap.add_argument("--per-face-keys", action="store_true", help="every face its own key vector under each key, as the "
                    "CLI's default per-track keying gives every face (track) its own; else one vector for all faces")
    ap.add_argument("--tone-age", action="store_true", help="also: change of the central face's mean Lab and of an age probe")
    args = ap.parse_args()
    t0 = time.time()
    meta = json.load(open(os.path.join(args.model_dir, "sdn.json")))
    if args.flicker:
        key = np.where(np.random.RandomState(123).rand(128) < 0.5, 1.0, -1.0).astype(np.float32)
        res = [flicker(args, meta, c, key) for c in args.flicker]
        print(json.dumps(res, indent=1))
        if args.out:
            json.dump(res, open(args.out, "w"), indent=1)
        return
    lab, pick, frames, boxes, off = load(args)
    if args.grey:
        from facespace import LUMA
        frames = np.repeat(np.rint(frames @ LUMA)[..., None], 3, -1).astype(np.uint8)
    N = len(pick)
    crops = frames[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    lms = lab["landmarks"][pick].astype(np.float32)
    m = blend_mask(128, **meta["blend"])[..., None]
    attrs0 = np.zeros((N, 6), np.float32)
    feed_lm = True
    if args.numpy:
        fs = numpy_model(args)
        model_id = "numpy " + (args.npz or "facespace.npz") + f" alpha={args.alpha}"
        if args.donor_mix is not None or (args.example_detail is not None and not args.learned_detail):
            from example_detail import Bank, Split
            bank, index, bank_frames = Bank.from_data(args.data, lab, off, Split().low)
        if args.donor_mix is not None:
            from donor_mix import DonorMix
            bank_crops = bank_frames[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2) / 127.5 - 1
            fs = DonorMix(fs.p, bank_crops, lab["landmarks"][index], args.donor_mix)
            model_id += f" + donor mix, eps={args.donor_mix}"
        if args.example_detail is not None:
            from example_detail import KeyedDetail, LearnedDetail
            source = LearnedDetail(args.learned_detail) if args.learned_detail else bank
            fs = KeyedDetail(fs, source, m[..., 0], beta=args.example_detail, hide=args.hide)
            kind = f"learned detail {args.learned_detail}" if args.learned_detail else "example detail"
            model_id += f" + {kind}, beta={args.example_detail}, hide={args.hide}"
        anon = lambda x, k: fs.anonymize(x, lms, k)  # noqa: E731
        rest = lambda y, k: fs.restore(y, lms, k)  # noqa: E731
    else:
        sa, sr = sessions(args, meta["variants"][args.variant or meta["default_variant"]], "anonymize", "restore")
        names = {i.name for i in sa.get_inputs()} | {i.name for i in sa.get_overridable_initializers()}
        feed_lm = "landmarks" in names and not args.no_landmarks

        def run(sess, x, k):
            out = []
            for b in range(0, N, 32):
                f = {"image": x[b:b + 32].astype(np.float32), "key": k[b:b + 32].astype(np.float32),
                     "attributes": attrs0[b:b + 32]}
                if feed_lm:
                    f["landmarks"] = lms[b:b + 32]
                out.append(sess.run(["image_out"], f)[0])
            return np.concatenate(out)
        anon = lambda x, k: run(sa, x, k)  # noqa: E731
        rest = lambda y, k: run(sr, y, k)  # noqa: E731
        model_id = meta["model_id"] + " " + (args.variant or meta["default_variant"])

    def to_frame(c128):
        return blend_crops(frames, c128, m, off)

    J = Judge()
    D0 = J.descs(frames, boxes)
    found0 = np.mean([J.found(frames[i], boxes[i]) for i in range(N)])
    ids = lab["identity"][pick]
    # other photo of the same person judged the same (the judge's sensitivity)
    same_other = []
    for i in range(N):
        o = [j for j in range(N) if j != i and ids[j] == ids[i]]
        if o:
            same_other.append(np.linalg.norm(D0[i] - D0[o[0]]) < 0.6)
    # gamut of the originals' central faces
    cen = []
    for i in range(N):
        b = boxes[i]
        cx, cy, w, h = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * 0.35, (b[3] - b[1]) * 0.35
        cen.append((slice(int(cy - h), int(cy + h)), slice(int(cx - w), int(cx + w))))
    hist = sum(gamut_hist(lab_ab(frames[i][cen[i]])) for i in range(N))
    gam = hist / hist.sum() >= 1e-4
    g0 = np.mean([outside(lab_ab(frames[i][cen[i]]), gam) for i in range(N)])
    # The rim: the blend ellipse (weight >= 0.5) outside the central face, where hair, ears and
    # the face's outline meet the change; its own gamut from the originals' rims.
    rims = []
    for i in range(N):
        r = np.zeros(frames.shape[1:3], bool)
        r[off:off + 128, off:off + 128] = m[..., 0] >= 0.5
        r[cen[i]] = False
        rims.append(r)
    rim0 = [lab_ab(frames[i][rims[i]]) for i in range(N)]
    rim_hist = sum(gamut_hist(a) for a in rim0)
    rim_gam = rim_hist / rim_hist.sum() >= 1e-4
    rng = np.random.RandomState(123)
    keys = [np.where(rng.rand(128) < 0.5, 1.0, -1.0).astype(np.float32) for _ in range(args.keys + 1)]
    per_key = []
    descs = []
    anons = []
    mask_w = m[..., 0]

    def key_matrix(ki):
        if not args.per_face_keys:
            return np.tile(keys[ki], (N, 1))
        g = np.random.RandomState(1000 + ki)
        return np.where(g.rand(N, 128) < 0.5, 1.0, -1.0).astype(np.float32)

    for ki in range(args.keys):
        K = key_matrix(ki)
        y = anon(crops, K)
        F = to_frame(y)
        anons.append(F)
        Dk = J.descs(F, boxes)
        descs.append(Dk)
        same = float(np.mean(np.linalg.norm(Dk - D0, axis=1) < 0.6))
        found = float(np.mean([J.found(F[i], boxes[i]) for i in range(N)]))
        pair = []
        for i in range(N):
            j = (i + 1) % N
            if ids[j] != ids[i]:
                pair.append(np.linalg.norm(Dk[i] - Dk[j]) >= 0.6)
        gamut = float(np.mean([outside(lab_ab(F[i][cen[i]]), gam) for i in range(N)]))
        rim_ab = [lab_ab(F[i][rims[i]]) for i in range(N)]
        extra = dict(rim_gamut=float(np.mean([outside(a, rim_gam) for a in rim_ab])),
                     rim_shift=float(np.mean([np.linalg.norm(a - a0, axis=1).mean() for a, a0 in zip(rim_ab, rim0)])))
        if args.grey:  # how far from grey the surrogates are: the largest channel difference, in levels
            Fi = F.astype(np.int16)
            extra["off_grey_max"] = float((Fi.max(-1) - Fi.min(-1)).max())
        if args.quick:
            r = dict(key=ki, same=same, found=found, pair=float(np.mean(pair)), gamut=gamut, **extra)
            per_key.append(r)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), f"{time.time() - t0:.0f}s", flush=True)
            continue
        yq = F[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        xr = rest(yq, K)
        Fr = to_frame(xr)
        err = ((Fr[:, off:off + 128, off:off + 128].astype(np.float64) - frames[:, off:off + 128, off:off + 128]) ** 2
               * mask_w[None, ..., None]).sum((1, 2, 3)) / (mask_w.sum() * 3)
        psnr = float(np.mean(10 * np.log10(255 ** 2 / np.maximum(err, 1e-10))))
        Kw = key_matrix(ki + 1)
        Fw = to_frame(rest(yq, Kw))
        Dw = J.descs(Fw, boxes)
        wrong_same = float(np.mean(np.linalg.norm(Dw - D0, axis=1) < 0.6))
        wrong_diff = float(np.mean(np.linalg.norm(Dw - Dk, axis=1) >= 0.6))
        r = dict(key=ki, same=same, found=found, pair=float(np.mean(pair)), gamut=gamut, psnr=psnr,
                 wrong_same=wrong_same, wrong_diff=wrong_diff, **extra)
        per_key.append(r)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), f"{time.time() - t0:.0f}s", flush=True)
    two = [float(np.mean(np.linalg.norm(descs[i] - descs[i + 1], axis=1) >= 0.6)) for i in range(len(descs) - 1)]
    res = dict(model=model_id, grey_faces=args.grey, n=N, identities=int(len(set(ids))), keys=args.keys, per_face_keys=args.per_face_keys,
               judge_same_other_photo=float(np.mean(same_other)), found_original=float(found0),
               gamut_original=float(g0), two_keys_worst=min(two), two_keys_mean=float(np.mean(two)))
    res["rim_gamut_original"] = float(np.mean([outside(a, rim_gam) for a in rim0]))
    for k in ["same", "found", "pair", "gamut", "rim_gamut", "rim_shift"] + ([] if args.quick else ["psnr", "wrong_same", "wrong_diff"]):
        vals = [r[k] for r in per_key]
        worst = max(vals) if k in ("same", "gamut", "rim_gamut", "rim_shift", "wrong_same") else min(vals)
        res[k + "_worst"] = worst
        res[k + "_mean"] = float(np.mean(vals))
    fs_path = args.npz or os.path.join(args.model_dir, "facespace.npz")
    if args.grey:  # grey faces' surrogates come from the grey face space
        fs_path = args.grey_npz or os.path.join(os.path.dirname(fs_path), "facespace_grey.npz")
    if not args.quick and os.path.exists(fs_path):
        from facespace import FaceSpace
        fs = FaceSpace.load(fs_path)
        lmu = lms if (args.numpy or feed_lm) else np.tile(fs.mean_landmarks, (N, 1))
        # the surrogate under key 0 as the runtime wrote it (uint8), its identity coordinates
        y = anons[0][:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        uy, rsy = fs.split(y, lmu)
        att = {}
        for name, val in [("negate", -uy), ("double", 2 * uy), ("half", 0.5 * uy)]:
            Fa = to_frame(fs.merge(val, rsy))
            Da = J.descs(Fa, boxes)
            att[name] = float(np.mean(np.linalg.norm(Da - D0, axis=1) < 0.6))
        avg = np.mean([a.astype(np.float32) for a in anons], 0)
        Da = J.descs(np.clip(np.rint(avg), 0, 255).astype(np.uint8), boxes)
        att["mean_of_keys"] = float(np.mean(np.linalg.norm(Da - D0, axis=1) < 0.6))
        res["attacks_same"] = att
    if args.tone_age:
        res["tone_age"] = tone_age(args, lab, frames, anons, cen)
    res["per_key"] = per_key
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps({k: v for k, v in res.items() if k != "per_key"}, indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        json.dump(res, open(args.out, "w"), indent=1)
    if args.md:
        write_md(args.md, res)
    if args.sheet:
        rows = []
        for i in range(0, min(N, 48), 6):
            rows.append(np.concatenate([np.concatenate([frames[j], anons[0][j], anons[1][j]], 0) for j in range(i, i + 6)], 1))
        cv2.imwrite(args.sheet, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
