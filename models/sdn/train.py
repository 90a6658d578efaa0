"""Train the SDN (flow + discriminator + classifier) with a wall-clock budget and exact resume.

  OMP_NUM_THREADS=1 python models/sdn/train.py --variant fast --device cpu --minutes 10
Runs again with the same --run resume from runs/<run>/ckpt.pt (weights, optimizers, step, RNG
states of python/numpy/torch and the data sampler), so 10-minute slices add up to one run.
Per-step losses and periodic held-out numbers are appended to models/sdn/train_log.csv.
"""
import argparse
import csv
import io
import json
import math
import os
import random
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import SDNFlow, Discriminator, Classifier, blend_mask, KEY_BITS, N_ATTR  # noqa: E402

LOG_FIELDS = ["run", "variant", "step", "minutes", "kind", "loss_g", "rest_l1", "rest_ssim", "out_l1",
              "id_cos", "div_cos", "wrong_cos", "cid_cos", "attr", "mid", "hf", "tv", "adv_g", "loss_d", "cls_id",
              "cls_attr", "wrong_real",
              "eval_rest_psnr", "eval_rest_psnr_jpeg", "eval_anon_cos", "eval_div_cos", "eval_wrong_cos",
              "eval_rest_psnr_video", "eval_wrong_sat"]

# JPEG round trips run on CPU threads (OpenCV releases the GIL), so a GPU step does not wait for
# a whole batch encoded one image after another
JPEG_POOL = ThreadPoolExecutor(8)


def contract():
    with open(os.path.join(HERE, "contract.json")) as f:
        return json.load(f)


class Data:
    def __init__(self, root, split, device):
        lab = np.load(os.path.join(root, "labels.npz"))
        shards = sorted(f for f in os.listdir(root) if f.startswith("shard_"))
        arrs = [np.load(os.path.join(root, f), mmap_mode="r") for f in shards]
        sel = np.nonzero(lab["split"] == split)[0]
        self.img = np.stack([arrs[lab["shard"][i]][lab["index"][i]] for i in sel])  # uint8 N,S,S,3
        self.ident = lab["identity"][sel]
        self.attrs = lab["attrs"][sel].astype(np.float32)
        self.source = lab["source"][sel]
        self.store = int(lab["store"])
        self.device = device

    def batch(self, idx, flip=None):
        x = torch.from_numpy(self.img[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1
        if flip is not None:
            x = torch.where(torch.from_numpy(flip)[:, None, None, None], x.flip(3), x)
        return x.to(self.device)


def ssim_map(a, b, C1=0.01 ** 2 * 4, C2=0.03 ** 2 * 4):
    # inputs in -1..1 (dynamic range 2)
    k = 7
    mu_a = F.avg_pool2d(a, k, 1, k // 2, count_include_pad=False)
    mu_b = F.avg_pool2d(b, k, 1, k // 2, count_include_pad=False)
    saa = F.avg_pool2d(a * a, k, 1, k // 2, count_include_pad=False) - mu_a ** 2
    sbb = F.avg_pool2d(b * b, k, 1, k // 2, count_include_pad=False) - mu_b ** 2
    sab = F.avg_pool2d(a * b, k, 1, k // 2, count_include_pad=False) - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * sab + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (saa + sbb + C2))


def jpeg_st(x, q):
    """Real JPEG (OpenCV: 8x8 DCT, 4:2:0 chroma) with a straight-through gradient.
    x [N,3,H,W] in -1..1."""
    xn = ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def one(i):
        ok, enc = cv2.imencode(".jpg", xn[i][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(q[i])])
        return cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy()

    out = list(JPEG_POOL.map(one, range(len(xn))))
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().to(x.device) / 127.5 - 1
    return x + (y - x).detach()


def video_codec_st(frame, rng, q_range=(35, 91)):
    """The anonymized frame as a video stream carries it: resampled to the size the face has in
    the video (the runtime pastes the 128 px result onto a face of any size, bilinear, and cuts
    it out again the same way), then compressed at that size (JPEG as the stand-in for an H.264
    intra block: DCT, quantisation, 4:2:0 chroma). Returns the frame at its new size; the caller
    samples the crop out of it in normalised coordinates, as the runtime samples the frame."""
    n, _, St, _ = frame.shape
    f = math.exp(rng.uniform(math.log(0.45), math.log(2.5)))
    size = max(32, int(round(St * f)))
    fr = F.interpolate(frame, size=(size, size), mode="bilinear", align_corners=False)
    return jpeg_st(fr, rng.randint(q_range[0], q_range[1], n))


def degrade(frame, orig, rng, S=128, strength=1.0, jpeg_q=None, video=False):
    """frame/orig [N,3,St,St] (St = stored size). Returns (restore input, target), both [N,3,S,S]:
    a jittered box (the runtime re-detects the anonymized face), then JPEG / quantisation, blur,
    colour shift and noise on the input only. video=True: the frame first goes through
    video_codec_st (face size and compression as in a video), the box is jittered only by
    `strength` (0 = the exact crops a stream's SEI carries)."""
    n, _, St, _ = frame.shape
    dev = frame.device
    if video:
        frame = video_codec_st(frame, rng)  # at another size: the grid below is in normalised coordinates
    sc = 1 + strength * torch.from_numpy(rng.uniform(-0.03, 0.03, n)).float()
    dx = strength * torch.from_numpy(rng.uniform(-3, 3, (n, 2))).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sc * S / St
    theta[:, 1, 1] = sc * S / St
    theta[:, :, 2] = 2 * dx / St
    grid = F.affine_grid(theta.to(dev), (n, 3, S, S), align_corners=False)
    inp = F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=False)
    tgt = F.grid_sample(orig, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if video:
        # already compressed; light sensor-like changes only, some of the time
        if rng.rand() < 0.2:
            gain = 1 + torch.from_numpy(rng.uniform(-0.02, 0.02, (n, 3, 1, 1))).float().to(dev)
            inp = inp * gain
        return inp, tgt
    if strength > 0:
        if rng.rand() < 0.3:
            sig = rng.uniform(0.4, 0.8)
            g = torch.exp(-torch.tensor([-1.0, 0.0, 1.0]) ** 2 / (2 * sig * sig))
            g = (g / g.sum()).to(dev)
            k2 = (g[:, None] * g[None, :])[None, None].repeat(3, 1, 1, 1)
            inp = F.conv2d(F.pad(inp, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
        if rng.rand() < 0.5:
            gain = 1 + torch.from_numpy(rng.uniform(-0.03, 0.03, (n, 3, 1, 1))).float().to(dev)
            off = torch.from_numpy(rng.uniform(-0.03, 0.03, (n, 3, 1, 1))).float().to(dev)
            inp = inp * gain + off
        inp = inp + torch.randn_like(inp) * float(rng.uniform(0, 0.01))
    if jpeg_q is not None:
        inp = jpeg_st(inp, [jpeg_q] * n)
    elif strength > 0 and rng.rand() < 0.6:
        inp = jpeg_st(inp, rng.randint(50, 96, n))
    else:  # 8-bit quantisation
        inp = inp + (((inp.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1 - inp).detach()
    return inp, tgt


def charb(x, eps=0.03):
    """Charbonnier: ~|x| for |x| >> eps, quadratic near 0 (no L1 dead zone at the identity map)."""
    return torch.sqrt(x * x + eps * eps) - eps


def cos(a, b):
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)


class MFN:
    """MobileFaceNet (../shared, licence not stated) used ONLY as a frozen training-loss aid."""

    def __init__(self, path, device):
        import onnx
        from onnx2torch import convert
        self.net = convert(onnx.load(path)).eval().to(device)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def __call__(self, x, lo=None):  # x [N,3,128,128] RGB -1..1, contract crop (scale 1.3)
        # a random down/up-sampling first (to 45-77 px), so that high-frequency adversarial
        # patterns cannot lower the identity similarity
        r = lo if lo is not None else 0.5
        x = F.interpolate(F.interpolate(x, size=(int(128 * r), int(128 * r)), mode="area"), size=(128, 128),
                          mode="bilinear", align_corners=False)
        c = x[:, :, 14:114, 14:114]
        c = F.interpolate(c, size=(112, 112), mode="bilinear", align_corners=False)
        return self.net(c.flip(1))


def change_roughness(dd, m):
    """High-pass and total variation of a change `dd` to the face. Changes must be smooth at the
    8 px scale: the high-pass term kills the squeeze-grid / colour-dot patterns that fool face
    embedders without changing the face, the TV of the 32x32 low-pass change blob and grid shapes."""
    hp = dd - F.interpolate(F.avg_pool2d(dd, 8), scale_factor=8, mode="bilinear", align_corners=False)
    hf = (charb(hp) * m).mean() / m.mean()
    dl = F.avg_pool2d(dd, 4)
    tv = (dl[:, :, 1:] - dl[:, :, :-1]).abs().mean() + (dl[:, :, :, 1:] - dl[:, :, :, :-1]).abs().mean()
    return hf, tv


def sample_cond(rng, n, dev):
    key = torch.from_numpy(rng.choice([-1.0, 1.0], (n, KEY_BITS))).float()
    attrs = np.zeros((n, N_ATTR), np.float32)
    on = rng.rand(n, N_ATTR) < 0.35
    mag = rng.uniform(0.5, 2.0, (n, N_ATTR)) * rng.choice([-1, 1], (n, N_ATTR))
    attrs[on] = mag[on]
    key2 = key.clone()
    for i in range(n):
        nb = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        idx = rng.choice(KEY_BITS, nb, replace=False)
        key2[i, idx] *= -1
    return key.to(dev), torch.from_numpy(attrs).to(dev), key2.to(dev)


def wrong_attributes(rng, attrs):
    """The attribute factors with one of them changed (set where it was off, off or reversed where
    it was set): a restore with the right key and these must not give the original back."""
    out = attrs.clone()
    for i in range(len(out)):
        j = rng.randint(N_ATTR)
        v = float(out[i, j])
        if v == 0:
            out[i, j] = float(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]))
        else:
            out[i, j] = 0.0 if rng.rand() < 0.5 else -v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="fast", choices=["fast", "full"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--run", default=None, help="run name (default: the variant)")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--ckpt-every-min", type=float, default=3)
    ap.add_argument("--mfn", default=os.path.join(HERE, "..", "..", "..", "shared", "models", "mobilefacenet_128d.onnx"))
    ap.add_argument("--log", default=os.path.join(HERE, "train_log.csv"))
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cls-pretrain-min", type=float, default=4.0)
    ap.add_argument("--id-margin", type=float, default=0.3, help="hinge: MobileFaceNet cosine to push below")
    ap.add_argument("--w-id", type=float, default=3.0)
    ap.add_argument("--w-hf", type=float, default=10.0)
    ap.add_argument("--w-tv", type=float, default=20.0)
    ap.add_argument("--w-adv", type=float, default=0.2)
    ap.add_argument("--w-rest", type=float, default=1.0, help="weight of the restore losses")
    ap.add_argument("--w-wrong-real", type=float, default=1.0,
                    help="weight of the wrong-secret restore's realism (range, smooth change, discriminator)")
    ap.add_argument("--mid-margin", type=float, default=0.15,
                    help="least mean change of the 8 px low-pass face (-1..1 units): privacy by magnitude, "
                         "which no face embedder can be fooled about")
    ap.add_argument("--w-mid", type=float, default=2.0, help="weight of --mid-margin's hinge")
    ap.add_argument("--w-wrong", type=float, default=0.5,
                    help="weight (times --w-id) of the wrong-secret restore's identity hinge")
    ap.add_argument("--ramp-steps", type=int, default=400,
                    help="steps over which the restore/smoothness penalties grow from 0.2 to full weight "
                         "(0: full from the start, for a run that goes on from a trained one)")
    ap.add_argument("--codec", choices=["jpeg", "video"], default="jpeg",
                    help="restore-loss degradation: jpeg (crops, JPEG q50-95) or video (face size and "
                         "compression of a video stream, exact or re-detected boxes)")
    ap.add_argument("--init-cls", default=None, help="start the classifier from this checkpoint's C")
    ap.add_argument("--keep-flows", default=None,
                    help="also keep the flow (fp16) of every checkpoint in this folder, as <run>_<step>.pt: "
                         "a run's later steps can lose what its earlier ones had, so each is exported and compared")
    ap.add_argument("--init-from", default=None,
                    help="start a new run from this checkpoint's networks (parts the model gained since start fresh)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run = args.run or args.variant
    rdir = os.path.join(HERE, "runs", run)
    os.makedirs(rdir, exist_ok=True)
    ck_path = os.path.join(rdir, "ckpt.pt")
    c = contract()

    train = Data(args.data, 0, dev)
    held = Data(args.data, 1, dev)
    ids = sorted(set(int(i) for i in train.ident if i >= 0))
    id_index = {v: k for k, v in enumerate(ids)}
    train_id = np.array([id_index.get(int(i), -1) for i in train.ident])
    St = train.store
    m128 = blend_mask(128, c["blend"]).to(dev)
    pad = (St - 128) // 2

    flow = SDNFlow(args.variant).to(dev)
    D = Discriminator().to(dev)
    C = Classifier(len(ids)).to(dev)
    opt_g = torch.optim.Adam(flow.parameters(), lr=args.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.99))
    opt_c = torch.optim.Adam(C.parameters(), lr=1e-3, betas=(0.9, 0.99))
    step, minutes_done = 0, 0.0
    rng = np.random.RandomState(args.seed)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    # earlier runs this one was started from: [{run, steps, minutes}], oldest first
    lineage = []
    if args.init_from and not os.path.exists(ck_path):
        ck0 = torch.load(args.init_from, map_location=dev, weights_only=False)
        lineage = ck0.get("lineage", []) + [{"run": ck0.get("run", os.path.basename(os.path.dirname(args.init_from))),
                                             "steps": int(ck0["step"]), "minutes": round(float(ck0["minutes"]), 1)}]
        own = flow.state_dict()
        same = {k: v for k, v in ck0["flow"].items() if k in own and own[k].shape == v.shape}
        missing, unexpected = flow.load_state_dict(same, strict=False)
        unexpected = sorted(set(ck0["flow"]) - set(same))
        # a flow-only checkpoint (export.py --flow-only) leaves D fresh and C to --init-cls
        if "D" in ck0:
            D.load_state_dict(ck0["D"])
        if "C" in ck0:
            C.load_state_dict(ck0["C"])
        print(f"initialised from {args.init_from} (step {ck0['step']}); new: {missing}; dropped: {unexpected}", flush=True)
    if args.init_cls and not os.path.exists(ck_path):
        C.load_state_dict(torch.load(args.init_cls, map_location=dev, weights_only=False)["C"])
        print(f"classifier initialised from {args.init_cls}", flush=True)
    if os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location=dev, weights_only=False)
        flow.load_state_dict(ck["flow"]); D.load_state_dict(ck["D"]); C.load_state_dict(ck["C"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"]); opt_c.load_state_dict(ck["opt_c"])
        step, minutes_done = ck["step"], ck["minutes"]
        lineage = ck.get("lineage", [])
        # RNG states must be CPU byte tensors, whatever map_location moved them to
        rng.set_state(ck["np_rng"]); random.setstate(ck["py_rng"]); torch.set_rng_state(ck["torch_rng"].cpu())
        if dev.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu())
        print(f"resumed {ck_path} at step {step}, {minutes_done:.1f} min", flush=True)
    mfn = MFN(args.mfn, dev)
    print("args", vars(args), flush=True)

    # fixed held-out eval batch
    erng = np.random.RandomState(123)
    eidx = erng.choice(len(held.img), 32, replace=False)
    ex = held.batch(eidx)
    ekey, eattr, ekey2 = sample_cond(erng, 32, dev)
    eattr = torch.zeros_like(eattr)

    new_log = not os.path.exists(args.log)
    if not new_log:
        with open(args.log, newline="") as f:
            reader = csv.DictReader(f)
            old = list(reader)
        if reader.fieldnames != LOG_FIELDS:  # a column was added since: rewrite the log under the new header
            with open(args.log, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
                w.writeheader()
                w.writerows(old)
    logf = open(args.log, "a", newline="")
    logw = csv.DictWriter(logf, fieldnames=LOG_FIELDS)
    if new_log:
        logw.writeheader()

    def save():
        torch.save(dict(flow=flow.state_dict(), D=D.state_dict(), C=C.state_dict(), opt_g=opt_g.state_dict(),
                        opt_d=opt_d.state_dict(), opt_c=opt_c.state_dict(), step=step, minutes=minutes_done,
                        np_rng=rng.get_state(), py_rng=random.getstate(), torch_rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state() if dev.type == "cuda" else None,
                        variant=args.variant, ids=ids, contract=c, run=run, lineage=lineage), ck_path + ".tmp")
        os.replace(ck_path + ".tmp", ck_path)
        if args.keep_flows:
            os.makedirs(args.keep_flows, exist_ok=True)
            torch.save(dict(flow={k: v.half() for k, v in flow.state_dict().items()}, step=step, minutes=minutes_done,
                            variant=args.variant, ids=ids, contract=c, run=run, lineage=lineage),
                       os.path.join(args.keep_flows, f"{run}_{step}.pt"))

    @torch.no_grad()
    def evaluate():
        flow.eval()
        xc = ex[:, :, pad:pad + 128, pad:pad + 128]
        a = flow(xc, ekey, eattr).clamp(-1, 1)
        bl = m128 * a + (1 - m128) * xc
        a2 = (m128 * flow(xc, ekey2, eattr).clamp(-1, 1) + (1 - m128) * xc)
        frame = ex.clone()
        frame[:, :, pad:pad + 128, pad:pad + 128] = bl
        out = {}
        for name, q, video in (("eval_rest_psnr", None, False), ("eval_rest_psnr_jpeg", 75, False),
                               ("eval_rest_psnr_video", None, True)):
            inp, tgt = degrade(frame, ex, np.random.RandomState(7), strength=0.0, jpeg_q=q, video=video)
            r = flow.inverse(inp, ekey, eattr).clamp(-1, 1)
            r = m128 * r + (1 - m128) * inp
            mse = (((r - tgt) / 2) ** 2 * m128).sum((1, 2, 3)) / (m128.sum() * 3)
            out[name] = float((10 * torch.log10(1 / mse)).mean())
        wr = flow.inverse(bl, ekey2, eattr)
        w = m128 * wr.clamp(-1, 1) + (1 - m128) * bl
        fx, fa, fa2, fw = mfn(xc), mfn(bl), mfn(a2), mfn(w)
        # share of the face a wrong secret turns out of range (the clipped, garish patches)
        out["eval_wrong_sat"] = float(((wr.abs() > 1).float().amax(1, keepdim=True) * m128).sum() / (m128.sum() * len(wr)))
        out["eval_anon_cos"] = float(cos(fa, fx).mean())
        out["eval_div_cos"] = float(cos(fa, fa2).mean())
        out["eval_wrong_cos"] = float(cos(fw, fx).mean())
        flow.train()
        return out

    t_start = time.time()
    if step == 0 and args.cls_pretrain_min > 0 and not (args.init_cls or args.init_from):
        # the from-scratch classifier gets a head start alone, so its embedding means something
        # before the flow's losses use it
        tp = time.time()
        k = 0
        while time.time() - tp < args.cls_pretrain_min * 60:
            idx = rng.choice(np.nonzero((train_id >= 0) | (np.abs(train.attrs).sum(1) > 0))[0], 32)
            xx = train.batch(idx, rng.rand(32) < 0.5)[:, :, pad:pad + 128, pad:pad + 128]
            li = torch.from_numpy(train_id[idx]).to(dev)
            la = torch.from_numpy(train.attrs[idx]).to(dev)
            e, al = C(xx)
            has = li >= 0
            l1 = F.cross_entropy(C.id_logits(e[has], li[has]), li[has])
            kn = la != 0
            l2 = (F.binary_cross_entropy_with_logits(al, (la > 0).float(), reduction="none") * kn).sum() / kn.sum().clamp(min=1)
            opt_c.zero_grad(set_to_none=True)
            (l1 + l2).backward()
            opt_c.step()
            k += 1
            if k % 20 == 0:
                print(f"cls pretrain {k} id {l1.item():.3f} attr {l2.item():.3f}", flush=True)
                logw.writerow(dict(run=run, variant=args.variant, step=0, minutes=f"{(time.time() - tp) / 60:.2f}",
                                   kind="cls_pretrain", cls_id=f"{l1.item():.4f}", cls_attr=f"{l2.item():.4f}"))
                logf.flush()
    if step == 0 and args.init_from:
        # the starting point's held-out numbers, so the log shows what this run changed
        row = {k: f"{v:.4f}" for k, v in evaluate().items()}
        row.update(run=run, variant=args.variant, step=0, minutes="0.00", kind="eval")
        logw.writerow(row); logf.flush()
        print("EVAL", row, flush=True)
    t_ck = time.time()
    budget = args.minutes * 60
    acc = {}
    # SIGTERM / Ctrl-C end the run after the current step, with a checkpoint
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    while True:
        if stop or time.time() - t_start > budget or (args.max_steps and step >= args.max_steps):
            break
        idx = rng.randint(0, len(train.img), args.batch)
        flip = rng.rand(args.batch) < 0.5
        x144 = train.batch(idx, flip)
        x = x144[:, :, pad:pad + 128, pad:pad + 128]
        lab_id = torch.from_numpy(train_id[idx]).to(dev)
        lab_attr = torch.from_numpy(train.attrs[idx]).to(dev)

        # ---- classifier (from scratch, real images) ----
        e, al = C(x)
        has = lab_id >= 0
        cls_id = F.cross_entropy(C.id_logits(e[has], lab_id[has]), lab_id[has]) if has.any() else e.sum() * 0
        known = lab_attr != 0
        cls_attr = (F.binary_cross_entropy_with_logits(al, (lab_attr > 0).float(), reduction="none") * known).sum() / known.sum().clamp(min=1)
        opt_c.zero_grad(set_to_none=True)
        (cls_id + cls_attr).backward()
        opt_c.step()

        # ---- flow (generator) ----
        key, attrs, key2 = sample_cond(rng, args.batch, dev)
        anon = flow(x, key, attrs)
        anon2 = flow(x, key2, attrs)
        bl = m128 * anon.clamp(-1, 1) + (1 - m128) * x
        bl2 = m128 * anon2.clamp(-1, 1) + (1 - m128) * x
        frame = x144.clone()
        frame[:, :, pad:pad + 128, pad:pad + 128] = bl
        video = args.codec == "video" and rng.rand() < 0.85
        strength = 1.0 if rng.rand() < (0.5 if video else 0.75) else 0.0
        inp, tgt = degrade(frame, x144, rng, strength=strength, video=video)
        rest = flow.inverse(inp, key, attrs)
        # the wrong secret, a third of the batch each: a nearby key, a random key (what any wrong
        # password gives), and the right key with one attribute factor changed (the factors are
        # part of the secret)
        third = torch.arange(args.batch, device=dev) % 3
        rand_key = torch.from_numpy(rng.choice([-1.0, 1.0], key.shape)).float().to(dev)
        wrong_key = torch.where((third == 0)[:, None], key2, torch.where((third == 1)[:, None], rand_key, key))
        wrong = flow.inverse(bl, wrong_key, torch.where((third == 2)[:, None], wrong_attributes(rng, attrs), attrs))
        wbl = m128 * wrong.clamp(-1, 1) + (1 - m128) * x

        rest_l1 = ((rest - tgt).abs() * (m128 + 0.1)).mean() / (m128.mean() + 0.1)
        rest_ssim = (ssim_map(rest, tgt) * m128).sum() / (m128.sum() * 3 * args.batch)
        out_l1 = (charb(anon - x) * (1 - m128)).mean() + (charb(anon2 - x) * (1 - m128)).mean()
        rng_pen = F.relu(anon.abs() - 1).mean() + F.relu(anon2.abs() - 1).mean()
        low = (F.avg_pool2d(bl, 16) - F.avg_pool2d(x, 16)).abs().mean()
        m32 = F.avg_pool2d(m128, 8)
        mid = ((F.avg_pool2d(bl, 8) - F.avg_pool2d(x, 8)).abs() * m32).sum((1, 2, 3)) / (m32.sum() * 3)
        l_mid = F.relu(args.mid_margin - mid).mean()
        lo = float(rng.uniform(0.35, 0.6))
        with torch.no_grad():
            fx = mfn(x, lo)
            ex_, ax_ = C(x)
        fa, fa2, fw = mfn(bl, lo), mfn(bl2, lo), mfn(wbl, lo)
        l_hf, l_tv = change_roughness(bl - x, m128)
        id_cos = cos(fa, fx)
        div_cos = cos(fa, fa2)
        wrong_cos = cos(fw, fx)
        l_id = F.relu(id_cos - args.id_margin).mean() + F.relu(cos(fa2, fx) - args.id_margin).mean()
        l_div = F.relu(div_cos - args.id_margin).mean()
        l_wrong = F.relu(wrong_cos - args.id_margin).mean()
        # a wrong secret must give another plausible face, not a clipped blotch: in range, a
        # smooth change of the anonymized face it was given (not of the original: measured from
        # the original, smoothness pulls the wrong restore back to it, which run veil_mid showed:
        # dlib judged 98% of its wrong-password restores the original person) and real to D
        w_hf, w_tv = change_roughness(wbl - bl.detach(), m128)
        wrong_real = (F.relu(wrong.abs() - 1).mean() * 5 + args.w_hf * w_hf + args.w_tv * w_tv
                      - args.w_adv * D(wbl).mean())
        ea, aa = C(bl)
        ea2, _ = C(bl2)
        cid_cos = cos(ea, ex_)
        l_cid = F.relu(cid_cos - 0.2).mean() + F.relu(cos(ea, ea2) - 0.4).mean()
        on = attrs != 0
        sgn = torch.sign(attrs)
        l_attr_on = (F.relu(1.5 * attrs.abs() - sgn * aa) * on).sum() / on.sum().clamp(min=1)
        l_attr_off = ((torch.sigmoid(aa) - torch.sigmoid(ax_)).abs() * (~on)).sum() / (~on).sum().clamp(min=1)
        l_attr = l_attr_on + l_attr_off
        adv_g = -D(bl).mean() - D(bl2).mean()
        # penalties ramp up so that a new flow can leave the identity map
        ramp = 1.0 if args.ramp_steps <= 0 else min(1.0, 0.2 + step / args.ramp_steps)
        loss_g = (ramp * (args.w_rest * (10 * rest_l1 + 2 * (1 - rest_ssim)) + 10 * out_l1 + args.w_hf * l_hf) + args.w_tv * l_tv
                  + 5 * rng_pen + 0.2 * low + args.w_mid * l_mid + args.w_id * (l_id + 0.5 * l_div + args.w_wrong * l_wrong)
                  + 0.5 * l_cid + 0.5 * l_attr + args.w_adv * adv_g + args.w_wrong_real * wrong_real)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
        opt_g.step()

        # ---- discriminator ----
        fakes = [bl, bl2] + ([wbl] if args.w_wrong_real > 0 else [])
        loss_d = F.relu(1 - D(x)).mean() + sum(F.relu(1 + D(f.detach())).mean() for f in fakes) / len(fakes)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        step += 1
        vals = dict(loss_g=loss_g, rest_l1=rest_l1, rest_ssim=rest_ssim, out_l1=out_l1, id_cos=id_cos.mean(),
                    div_cos=div_cos.mean(), wrong_cos=wrong_cos.mean(), cid_cos=cid_cos.mean(), attr=l_attr, mid=mid.mean(), hf=l_hf, tv=l_tv,
                    adv_g=adv_g, loss_d=loss_d, cls_id=cls_id, cls_attr=cls_attr, wrong_real=wrong_real)
        for k, v in vals.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["n"] = acc.get("n", 0) + 1
        now_min = minutes_done + (time.time() - t_start) / 60
        if step % 10 == 0:
            row = {k: f"{v / acc['n']:.4f}" for k, v in acc.items() if k != "n"}
            row.update(run=run, variant=args.variant, step=step, minutes=f"{now_min:.2f}", kind="train")
            logw.writerow(row); logf.flush()
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            acc = {}
        if step % args.eval_every == 0:
            ev = evaluate()
            row = {k: f"{v:.4f}" for k, v in ev.items()}
            row.update(run=run, variant=args.variant, step=step, minutes=f"{now_min:.2f}", kind="eval")
            logw.writerow(row); logf.flush()
            print("EVAL", row, flush=True)
        if time.time() - t_ck > args.ckpt_every_min * 60:
            minutes_done_save = minutes_done
            minutes_done = now_min
            save()
            minutes_done = minutes_done_save
            t_ck = time.time()
    minutes_done += (time.time() - t_start) / 60
    save()
    print(f"saved {ck_path} step {step} total {minutes_done:.1f} min", flush=True)


if __name__ == "__main__":
    main()
