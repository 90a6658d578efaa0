"""Train the learned detail generator (tried after sdn-0.6.1; off by default, see MODEL_CARD.md).

    OMP_NUM_THREADS=1 deps/sdn-venv/bin/python models/sdn/train_detail.py [--n 8000] [--minutes 20]
        [--run models/sdn/runs/detail] [--lam 1.0] [--proj] [--color-weight 1]
                                                         # resumable: continues from RUN/ckpt.pt
    deps/sdn-venv/bin/python models/sdn/train_detail.py --write RUN --gain 1.0 [--key-eps 1] [--lum] --out X.npz
                                                         # facespace.npz + the generator -> X.npz
    OMP_NUM_THREADS=1 deps/sdn-venv/bin/python models/sdn/train_detail.py --check X.npz [--check-n 8]
        [--steps 3 6] [--sheet /tmp/sheet.png] [--out X.json]   # restore PSNR and a contact sheet

G maps the low-resolution face (the face-space reconstruction mu + Syn z of a crop, in the
canonical G x G frame, as the anonymized face's mu + Syn z' is at run time) to the detail band that
the face space misses (r = v - mu - Syn z, inside the support). It is trained on fitting crops only
(split == 0, the training identities), sampled in the canonical frame with the mean landmarks
(align = 0, as the graphs do). Loss: L1 of the mask-weighted difference plus lam times the L1 of
local high-frequency energy (gradient magnitude, Laplacian magnitude and, weighted by --color-weight,
the colour's deviation from the luminance, each averaged over 4 x 4 cells) so that the output keeps the detail's energy instead of a blur; with --proj the loss sees
the output as facespace.detail_layer adds it (masked, minus its part in the face space). The log
(RUN/log.json) holds the loss curve. No dlib, no pretrained network.

Network (DetailNet; facespace.detail_net is the numpy twin): conv3x3 3->c1 at 64 px plus a learned
position map, LeakyReLU(0.2); conv3x3 stride 2 c1->c2 (32 px); two dilated (2, 4) conv3x3 c2->c2;
nearest 2x upsampling; concat with the 64 px features; conv3x3 (c1+c2)->c1; conv3x3 c1->3.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def canonical_data(fs, n, seed, cache):
    """Low-res faces and detail bands [n,3,G,G] (zeros outside the support) of n random fitting crops."""
    if os.path.exists(cache):
        z = np.load(cache)
        if int(z["n"]) == n and int(z["seed"]) == seed:
            return z["lo"], z["r"], z["idx"]
    from fit import load_data, warp_all
    lab, shards = load_data(os.path.join(HERE, "data"))
    fit = np.nonzero(lab["split"] == 0)[0]
    rng = np.random.RandomState(seed)
    idx = np.sort(rng.choice(fit, size=min(n, len(fit)), replace=False))
    lab["landmarks"] = np.tile(fs.mean_landmarks.astype(np.float32), (len(lab["landmarks"]), 1))  # align = 0
    t0 = time.time()
    X = warp_all(lab, shards, fs.tps_T, fs.G, idx, int(lab["store"])).reshape(len(idx), -1)
    v = X[:, fs.support].astype(np.float64)
    z = (v - fs.mu) @ fs.ana.T
    lo = fs.mu + z @ fs.syn.T
    r = v - lo
    G = fs.G

    def img(a):
        full = np.zeros((len(a), 3 * G * G), np.float32)
        full[:, fs.support] = a
        return full.reshape(len(a), 3, G, G)
    lo, r = img(lo), img(r)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    np.savez(cache, lo=lo, r=r, idx=idx, n=n, seed=seed)
    print(f"canonical data: {len(idx)} fitting crops ({time.time() - t0:.0f}s)", flush=True)
    return lo, r, idx


def make_net(c1=32, c2=48, G=64):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class DetailNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = nn.Conv2d(3, c1, 3, padding=1)
            self.pos = nn.Parameter(torch.zeros(1, c1, G, G))
            self.c1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
            self.c2 = nn.Conv2d(c2, c2, 3, padding=2, dilation=2)
            self.c3 = nn.Conv2d(c2, c2, 3, padding=4, dilation=4)
            self.c4 = nn.Conv2d(c1 + c2, c1, 3, padding=1)
            self.c5 = nn.Conv2d(c1, 3, 3, padding=1)

        def forward(self, x):
            a = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
            h0 = a(self.c0(x) + self.pos)
            h = a(self.c1(h0))
            h = a(self.c2(h))
            h = a(self.c3(h))
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = a(self.c4(torch.cat([h0, h], 1)))
            return self.c5(h)
    return DetailNet()


def net_params(net):
    """Torch weights -> the numpy arrays facespace.detail_net reads (det_*)."""
    out = {}
    for name in ["c0", "c1", "c2", "c3", "c4", "c5"]:
        m = getattr(net, name)
        out[f"det_{name}_w"] = m.weight.detach().numpy().astype(np.float32)
        out[f"det_{name}_b"] = m.bias.detach().numpy().astype(np.float32)
    out["det_pos"] = net.pos.detach().numpy()[0].astype(np.float32)
    return out


def energy(t, pool):
    import torch.nn.functional as F
    lum = t.mean(1, keepdim=True)
    gx = lum[..., :, 1:] - lum[..., :, :-1]
    gy = lum[..., 1:, :] - lum[..., :-1, :]
    g = (gx[..., :-1, :].abs() + gy[..., :, :-1].abs())
    lap = (4 * lum[..., 1:-1, 1:-1] - lum[..., :-2, 1:-1] - lum[..., 2:, 1:-1] - lum[..., 1:-1, :-2] - lum[..., 1:-1, 2:]).abs()
    col = (t - lum)[..., 1:-1, 1:-1].abs().sum(1, keepdim=True)
    return F.avg_pool2d(g, pool), F.avg_pool2d(lap, pool), F.avg_pool2d(col, pool)


def train(args):
    import torch
    torch.set_num_threads(1)
    from facespace import FaceSpace
    fs = FaceSpace.load(os.path.join(HERE, "facespace.npz"))
    lo, r, idx = canonical_data(fs, args.n, args.seed, os.path.join(HERE, "runs", f"detail_data_{args.n}_{args.seed}.npz"))
    G = fs.G
    full = np.zeros(3 * G * G, np.float32)
    full[fs.support] = fs.mask
    mask = torch.tensor(full.reshape(1, 3, G, G))
    nval = 256
    lo_t, r_t = torch.tensor(lo), torch.tensor(r)
    xv, yv = lo_t[:nval], r_t[:nval]
    xt, yt = lo_t[nval:], r_t[nval:]
    net = make_net(args.c1, args.c2, G)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    os.makedirs(args.run, exist_ok=True)
    ck = os.path.join(args.run, "ckpt.pt")
    step, log = 0, []
    if os.path.exists(ck):
        s = torch.load(ck)
        net.load_state_dict(s["net"])
        opt.load_state_dict(s["opt"])
        step, log = s["step"], s["log"]
        print(f"resumed at step {step}", flush=True)
    rng = np.random.RandomState(args.seed + step)

    sup = torch.tensor(fs.support)
    mvec = torch.tensor(fs.mask, dtype=torch.float32)
    ana_t = torch.tensor(fs.ana.T, dtype=torch.float32)
    syn_t = torch.tensor(fs.syn.T, dtype=torch.float32)
    cw = [1.0, 1.0, args.color_weight]

    def project(p):
        """--proj: the loss sees what survives in the anonymized face, mask * p minus its part in the
        face space (Syn Ana), as facespace.detail_layer adds it (up to the gain)."""
        g = (p.reshape(len(p), -1)[:, sup] * mvec)
        g = g - (g @ ana_t) @ syn_t
        full = torch.zeros(len(p), 3 * G * G)
        full[:, sup] = g
        return full.reshape(p.shape)

    def loss_fn(p, y):
        if args.proj:
            p, y = project(p), y * mask
        l1 = ((p - y).abs() * mask).sum() / (mask.sum() * len(p))
        ep, et = energy(p * mask, 4), energy(y * mask, 4)
        le = sum(w * (a - b).abs().mean() for w, a, b in zip(cw, ep, et))
        return l1 + args.lam * le, l1, le

    t0 = time.time()
    last = t0
    while time.time() - t0 < args.minutes * 60:
        b = rng.randint(0, len(xt), args.batch)
        x, y = xt[b], yt[b]
        if rng.rand() < 0.5:  # the canonical frame is symmetric about the window's centre
            x, y = x.flip(-1), y.flip(-1)
        p = net(x)
        loss, l1, le = loss_fn(p, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or time.time() - last > args.ckpt_minutes * 60:
            with torch.no_grad():
                pv = net(xv)
                vl, vl1, vle = loss_fn(pv, yv)
                e_ratio = (energy(pv * mask, 4)[0].mean() / energy(yv * mask, 4)[0].mean()).item()
                zero = loss_fn(torch.zeros_like(yv), yv)[0].item()
            log.append(dict(step=step, seconds=round(time.time() - t0, 1), train=loss.item(), val=vl.item(), val_l1=vl1.item(),
                            val_energy=vle.item(), val_zero_output=zero, grad_energy_ratio=e_ratio))
            print(json.dumps(log[-1]), flush=True)
            if time.time() - last > args.ckpt_minutes * 60:
                torch.save(dict(net=net.state_dict(), opt=opt.state_dict(), step=step, log=log, args=vars(args)), ck)
                last = time.time()
    torch.save(dict(net=net.state_dict(), opt=opt.state_dict(), step=step, log=log, args=vars(args)), ck)
    with open(os.path.join(args.run, "log.json"), "w") as f:
        json.dump(dict(args=vars(args), train_crops=int(len(xt)), val_crops=nval, log=log), f, indent=1)
    print(f"saved {ck} at step {step}", flush=True)


def write(args):
    import torch
    small = os.path.join(args.write, "generator.pt")  # train_gan.py's generator alone
    s = torch.load(small if os.path.exists(small) else os.path.join(args.write, "ckpt.pt"))
    a = s["args"]
    z = dict(np.load(os.path.join(HERE, "facespace.npz")))
    net = make_net(a["c1"], a["c2"], int(z["G"]))
    net.load_state_dict(s["net"])
    z.update(net_params(net))
    z["det_gain"] = np.array(float(args.gain))
    if args.key_eps:
        z["det_eps"] = np.array(float(args.key_eps))
        z["det_Wk"] = np.random.RandomState(17).randn(z["Q"].shape[1], 128)
    if args.lum:
        z["det_lum"] = np.array(1.0)
    if args.alpha is not None:
        z["alpha"] = np.array(float(args.alpha))
    if args.restore_steps is not None:
        z["restore_steps"] = np.array(int(args.restore_steps))
    np.savez(args.out, **z)
    print(f"wrote {args.out}: generator of {args.write} (step {s['step']}), gain {args.gain}, key eps {args.key_eps}, lum {args.lum}, "
          f"alpha {float(z['alpha'])}", flush=True)


def check(args):
    """Restore PSNR (float and from uint8; central 80 x 80 and sdn.json's blend ellipse) of the
    variant --check NPZ against facespace.npz on held-out crops, and a contact sheet."""
    import cv2
    from centerface import blend_mask
    from facespace import FaceSpace
    from quick_judge import load
    meta = json.load(open(os.path.join(HERE, "sdn.json")))
    lab, pick, frames, boxes, off = load(argparse.Namespace(data=os.path.join(HERE, "data"), n=args.check_n))
    N = len(pick)
    crops = frames[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1
    lms = lab["landmarks"][pick].astype(np.float64)
    rng = np.random.RandomState(123)
    keys = [np.tile(np.where(rng.rand(128) < 0.5, 1.0, -1.0), (N, 1)) for _ in range(2)]
    bm = blend_mask(128, **meta["blend"])
    u8 = lambda y: np.clip(np.rint((y + 1) * 127.5), 0, 255)  # noqa: E731
    x8 = u8(crops)

    def psnr(xr, w):
        e = ((u8(xr) - x8) ** 2 * w).sum((1, 2, 3)) / (w.sum() * 3)
        return float(np.mean(10 * np.log10(255 ** 2 / np.maximum(e, 1e-10))))
    cen = np.zeros((128, 128))
    cen[24:104, 24:104] = 1
    res = dict(n=N)
    sheets = {}
    for name, path in [("sdn-0.6.1", os.path.join(HERE, "facespace.npz")), ("variant", args.check)]:
        t0 = time.time()
        fs = FaceSpace.load(path)
        y = fs.anonymize(crops, lms, keys[0])
        y1 = fs.anonymize(crops, lms, keys[1])
        yq = u8(y) / 127.5 - 1
        r = {}
        for steps in args.steps:
            xf = fs.restore(y, lms, keys[0], steps=steps)
            xq = fs.restore(yq, lms, keys[0], steps=steps)
            r[f"steps_{steps}"] = dict(float_central80=psnr(xf, cen), float_ellipse=psnr(xf, bm),
                                       uint8_central80=psnr(xq, cen), uint8_ellipse=psnr(xq, bm))
        xq = fs.restore(yq, lms, keys[0])
        xw = fs.restore(yq, lms, keys[1])
        r["wrong_key_ellipse_db"] = psnr(xw, bm)
        r["seconds"] = round(time.time() - t0, 1)
        res[name] = r
        sheets[name] = (y, y1, xq, xw)
        print(name, json.dumps(r), flush=True)

    def frame(c):
        f = frames.astype(np.float64).copy()
        f[:, off:off + 128, off:off + 128] = f[:, off:off + 128, off:off + 128] * (1 - bm[..., None]) + u8(c).transpose(0, 2, 3, 1) * bm[..., None]
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    cols = [frames, frame(sheets["sdn-0.6.1"][0])] + [frame(c) for c in sheets["variant"]]
    rows = [np.concatenate([c[i] for c in cols], 1) for i in range(min(6, N))]
    sheet = np.concatenate(rows, 0)
    sheet = cv2.resize(sheet, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    if args.sheet:
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"sheet {args.sheet}: columns original, sdn-0.6.1 key 0, variant key 0, key 1, restore (uint8), wrong key", flush=True)
    if args.out:
        json.dump(res, open(args.out, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8000, help="fitting crops used")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "detail"))
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--ckpt-minutes", type=float, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lam", type=float, default=1.0, help="weight of the local high-frequency energy term")
    ap.add_argument("--color-weight", type=float, default=1.0, help="weight of the colour part of the energy term")
    ap.add_argument("--proj", action="store_true", help="the loss sees the output projected as facespace.detail_layer adds it")
    ap.add_argument("--c1", type=int, default=32)
    ap.add_argument("--c2", type=int, default=48)
    ap.add_argument("--write", default=None, help="RUN: write facespace.npz plus RUN's generator to --out")
    ap.add_argument("--out", default=None)
    ap.add_argument("--gain", type=float, default=1.0, help="the generated detail's amplitude (times 1 - alpha, inside the mask)")
    ap.add_argument("--key-eps", type=float, default=0.0, help="the generator also sees a keyed random shift of the "
                    "identity coordinates of this size, so that only the key gives back the layer restore subtracts")
    ap.add_argument("--lum", action="store_true", help="luminance only: the generated layer is the mean of its channels")
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--restore-steps", type=int, default=None)
    ap.add_argument("--check", default=None, help="NPZ: restore PSNR and a contact sheet of this variant")
    ap.add_argument("--check-n", type=int, default=16)
    ap.add_argument("--steps", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--sheet", default=None)
    args = ap.parse_args()
    if args.check:
        check(args)
    elif args.write:
        write(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
