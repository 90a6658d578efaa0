"""Learned detail: a small network that draws a face crop's full-resolution detail from its low
band, trained against a discriminator (a lead for issue 11, measured in MODEL_CARD.md, "Learned
detail"). It is the trained twin of example_detail.Bank.detail: the same split of the 128 crop
(example_detail.Split: P = U (D U)^-1 D, D the 4 x 4 means, so that detail h = y - P y has every
4 x 4 mean zero and example_detail.KeyedDetail's restore stays exact), the same place in the map.

    deps/sdn-venv/bin/python models/sdn/train_sr.py --pack models/sdn/runs/sr/pack.npz [--n 7000]
        # fitting crops (training identities and UTKFace, none held out) as WebP, and the 4 x 4
        # means of sdn-0.6.3 surrogates of other fitting crops: what travels to a GPU machine
    python3 models/sdn/train_sr.py --data PACK --run RUN --device cuda --minutes 7 [--rec 60] [--disc detail]
        # resumable (RUN/ckpt.pt); writes RUN/detail.onnx, RUN/log.json, RUN/samples.png; on the
        # CPU with the torch of `scripts/setup-models.sh --eval` (MODEL_CARD.md: "Learned detail")

Losses, on the generator G(low, noise) -> detail (its own low band taken off):
  - L1 between G's detail and the crop's own (y - P y), on real crops' low bands (weight --rec);
  - a hinge loss from a spectrally normalised patch discriminator. --disc pair: it sees (low
    band, face), real crops against G's detail on the same low bands, and G's adversarial loss is
    also taken on the low bands of sdn-0.6.3 surrogates, which is what G sees when it runs (the
    discriminator is not trained on those, so that it cannot tell them by their low band alone).
    --disc detail: it sees the detail alone, real against G's on real crops' and surrogates' low
    bands alike.
noise [N,4,32,32] is keyed when G runs in the map (so that two keys give two details); in
training it is random. No dlib, no face recogniser, no pretrained network.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
NOISE = 4


def pack(args):
    import cv2
    import quick_judge as qj
    from example_detail import Split
    from facespace import FaceSpace
    data = os.path.join(HERE, "data")
    lab = np.load(os.path.join(data, "labels.npz"))
    lab = {k: lab[k] for k in lab.files}
    off = (int(lab["store"]) - 128) // 2
    fit = np.nonzero(lab["split"] == 0)[0]
    rng = np.random.RandomState(args.seed)
    idx = np.sort(rng.choice(fit, size=min(args.n + args.n_surrogates, len(fit)), replace=False))
    sur = np.sort(rng.choice(idx, size=args.n_surrogates, replace=False))
    real = np.setdiff1d(idx, sur)
    blobs = []
    for s in range(0, len(real), 1000):
        fr = qj.stored_frames(data, lab, real[s:s + 1000])[:, off:off + 128, off:off + 128]
        blobs += [cv2.imencode(".webp", im[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, args.quality])[1].tobytes() for im in fr]
    boff = np.cumsum([0] + [len(b) for b in blobs])
    fs = FaceSpace.load(HERE)
    d = Split().D
    means = []
    for s in range(0, len(sur), 500):
        b = sur[s:s + 500]
        fr = qj.stored_frames(data, lab, b)[:, off:off + 128, off:off + 128]
        x = fr.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        keys = np.where(rng.rand(len(b), 128) < 0.5, 1.0, -1.0).astype(np.float32)
        t = fs.anonymize(x, lab["landmarks"][b].astype(np.float32), keys)
        # the surrogate as the runtime writes it (uint8), then its 4 x 4 means
        t = np.rint((np.clip(t, -1, 1) + 1) * 127.5) / 127.5 - 1
        means.append(np.einsum("ij,ncjk,lk->ncil", d, t, d).astype(np.float16))
    os.makedirs(os.path.dirname(os.path.abspath(args.pack)), exist_ok=True)
    np.savez(args.pack, blob=np.frombuffer(b"".join(blobs), np.uint8), offsets=boff, real=real,
             surrogate_means=np.concatenate(means), surrogates=sur, M=Split().M.astype(np.float32))
    print(f"packed {len(real)} crops ({boff[-1] / 2**20:.1f} MiB) and {len(sur)} surrogates' means -> {args.pack}",
          flush=True)


def unpack(path):
    import cv2
    z = np.load(path)
    b, off = z["blob"], z["offsets"]
    ims = [cv2.imdecode(b[off[i]:off[i + 1]], cv2.IMREAD_COLOR)[..., ::-1] for i in range(len(off) - 1)]
    return np.stack(ims).transpose(0, 3, 1, 2), z["surrogate_means"].astype(np.float32), z["M"]


def make_net(ch=64, ch_hi=32, blocks=3):
    """G: (low [N,3,128,128], noise [N,4,32,32]) -> detail [N,3,128,128] before its low band is
    taken off. Works at 32 x 32 (pixel unshuffle by 4) and 64 x 64; about 0.85 GFLOP a face at the
    defaults."""
    import torch
    import torch.nn as nn

    class Res(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a = nn.Conv2d(c, c, 3, 1, 1)
            self.b = nn.Conv2d(c, c, 3, 1, 1)

        def forward(self, x):
            return x + self.b(torch.relu(self.a(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3 * 16 + NOISE, ch, 3, 1, 1)
            self.body = nn.Sequential(*[Res(ch) for _ in range(blocks)])
            self.up = nn.Conv2d(ch, 4 * ch_hi, 3, 1, 1)
            self.mid = nn.Conv2d(ch_hi + 12, ch_hi, 3, 1, 1)
            self.out = nn.Conv2d(ch_hi, 12, 3, 1, 1)

        def forward(self, low, noise):
            x = torch.relu(self.stem(torch.cat([nn.functional.pixel_unshuffle(low, 4), noise], 1)))
            x = nn.functional.pixel_shuffle(self.up(self.body(x)), 2)
            x = torch.relu(self.mid(torch.cat([torch.relu(x), nn.functional.pixel_unshuffle(low, 2)], 1)))
            return nn.functional.pixel_shuffle(self.out(x), 2)

    return Net()


def make_disc(ch=64, inputs=6):
    import torch.nn as nn
    sn = nn.utils.spectral_norm

    def block(i, o, s):
        return [sn(nn.Conv2d(i, o, 4 if s == 2 else 3, s, 1)), nn.LeakyReLU(0.2)]
    return nn.Sequential(*block(inputs, ch, 2), *block(ch, 2 * ch, 2), *block(2 * ch, 4 * ch, 2),
                         *block(4 * ch, 4 * ch, 1), sn(nn.Conv2d(4 * ch, 1, 3, 1, 1)))  # 16 x 16 patch logits


class Detail:
    """G with its output's low band taken off: detail(low, noise) has every 4 x 4 mean zero."""

    def __init__(self, net, M, dev):
        import torch
        self.net = net
        self.M = torch.tensor(M, device=dev)  # [128,32]: P = M D
        self.D = torch.kron(torch.eye(32, device=dev), torch.full((1, 4), 0.25, device=dev))

    def low_of_means(self, m):
        return self.M @ m @ self.M.T

    def low(self, x):
        return self.low_of_means(self.D @ x @ self.D.T)

    def __call__(self, low, noise):
        y = self.net(low, noise)
        return y - self.low(y)


def train(args):
    import torch
    import torch.nn.functional as F
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    u8, smeans, M = unpack(args.data)
    x = torch.tensor(u8, device=dev).float() / 127.5 - 1
    sm = torch.tensor(smeans, device=dev)
    nval = min(256, len(x) // 8)
    net = make_net(args.ch, args.ch_hi, args.blocks).to(dev)
    G = Detail(net, M, dev)
    disc = make_disc(args.dch, 3 if args.disc == "detail" else 6).to(dev)
    og = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.5, 0.99))
    od = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.99))
    os.makedirs(args.run, exist_ok=True)
    ck = os.path.join(args.run, "ckpt.pt")
    step, log = 0, []
    if os.path.exists(ck):
        s = torch.load(ck, map_location=dev)
        net.load_state_dict(s["net"])
        disc.load_state_dict(s["disc"])
        og.load_state_dict(s["opt"])
        od.load_state_dict(s["opt_d"])
        step, log = s["step"], s["log"]
        print(f"resumed at step {step}", flush=True)
    elif args.init:
        net.load_state_dict(torch.load(args.init, map_location=dev)["net"])
        print(f"generator from {args.init}", flush=True)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed + step)
    ntr = len(x) - nval
    B = args.batch

    def noise(n):
        return torch.randn(n, NOISE, 32, 32, device=dev, generator=gen)

    def flip(ims, f):
        return torch.where(f[:, None, None, None], ims.flip(3), ims)

    t0 = time.time()
    last = t0
    while time.time() - t0 < args.minutes * 60 and (args.steps is None or step < args.steps):
        b = torch.randint(0, ntr, (B,), device=dev, generator=gen) + nval
        f = torch.rand(B, device=dev, generator=gen) < 0.5
        y = flip(x[b], f)
        lo = G.low(y)
        h = G(lo, noise(B))
        s = torch.randint(0, len(sm), (B,), device=dev, generator=gen)
        slo = flip(G.low_of_means(sm[s]), f)
        sh = G(slo, noise(B))
        if args.disc == "detail":
            # The detail alone (times 4, near the faces' spread): real against G's, on real
            # crops' low bands and on surrogates' alike, which it cannot tell apart by their low band.
            real_in, fake_in, sfake_in = 4 * (y - lo), 4 * h, 4 * sh
            ld = F.relu(1 - disc(real_in)).mean() + 0.5 * (F.relu(1 + disc(fake_in.detach())).mean()
                                                           + F.relu(1 + disc(sfake_in.detach())).mean())
        else:
            real_in, fake_in, sfake_in = torch.cat([lo, y], 1), torch.cat([lo, lo + h], 1), torch.cat([slo, slo + sh], 1)
            ld = F.relu(1 - disc(real_in)).mean() + F.relu(1 + disc(fake_in.detach())).mean()
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        adv = -0.5 * (disc(fake_in).mean() + disc(sfake_in).mean())
        rec = (h - (y - lo)).abs().mean()
        lg = args.rec * rec + args.adv * adv
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        step += 1
        if step % args.log_every == 0:
            with torch.no_grad():
                yv = x[:nval]
                lv = G.low(yv)
                hv = G(lv, noise(nval))
                tv = yv - lv
                h2 = G(lv, noise(nval))
            log.append(dict(step=step, seconds=round(time.time() - t0, 1), d=round(ld.item(), 4),
                            adv=round(adv.item(), 4), rec=round(rec.item(), 5),
                            val_rec=round((hv - tv).abs().mean().item(), 5), val_rec_zero=round(tv.abs().mean().item(), 5),
                            energy_ratio=round((hv.std() / tv.std()).item(), 4),
                            noise_effect=round(((hv - h2).std() / hv.std()).item(), 4)))
            print(json.dumps(log[-1]), flush=True)
        if time.time() - last > args.ckpt_minutes * 60:
            save(ck, net, disc, og, od, step, log, args)
            last = time.time()
    save(ck, net, disc, og, od, step, log, args)
    with open(os.path.join(args.run, "log.json"), "w") as fh:
        json.dump(dict(args=vars(args), train_crops=int(ntr), val_crops=nval, log=log), fh, indent=1)
    samples(args, G, x[:8], sm[:8], gen)
    export(args, G, dev)
    print(f"saved {ck} at step {step} ({time.time() - t0:.0f}s)", flush=True)


def save(ck, net, disc, og, od, step, log, args):
    """RUN/ckpt.pt (everything, to resume) and RUN/generator.pt (the net alone)."""
    import torch
    cpu = lambda sd: {k: t.detach().cpu() for k, t in sd.items()}  # noqa: E731
    small = dict(net=cpu(net.state_dict()), step=step, log=log, args=vars(args))
    for path, state in [(ck, dict(small, disc=cpu(disc.state_dict()), opt=og.state_dict(), opt_d=od.state_dict())),
                        (os.path.join(os.path.dirname(ck), "generator.pt"), small)]:
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)


def export(args, G, dev):
    """RUN/detail.onnx: (low [N,3,128,128], noise [N,4,32,32]) -> detail [N,3,128,128], float32."""
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = G.net
            self.register_buffer("M", G.M.cpu())
            self.register_buffer("D", G.D.cpu())

        def forward(self, low, noise):
            y = self.net(low, noise)
            return y - self.M @ (self.D @ y @ self.D.T) @ self.M.T

    w = Wrap().cpu().eval()
    G.net.to(dev)
    path = os.path.join(args.run, "detail.onnx")
    ex = (torch.zeros(2, 3, 128, 128), torch.zeros(2, NOISE, 32, 32))
    try:
        torch.onnx.export(w, ex, path, input_names=["low", "noise"], output_names=["detail"],
                          dynamic_axes={"low": {0: "n"}, "noise": {0: "n"}, "detail": {0: "n"}}, opset_version=17,
                          dynamo=False)
    except Exception as e:  # noqa: BLE001 (the exporter that is there decides)
        print(f"legacy export failed ({e}); trying dynamo", flush=True)
        torch.onnx.export(w, ex, path, input_names=["low", "noise"], output_names=["detail"],
                          dynamic_shapes={"low": {0: torch.export.Dim("n")}, "noise": {0: torch.export.Dim("n")}})
    G.net.to(dev)
    print(f"wrote {path}", flush=True)


def samples(args, G, y, sm, gen):
    """RUN/samples.png: rows of held-back crops: original, low band, low + G (two noises); then
    sdn-0.6.3 surrogates' low bands and low + G (two noises)."""
    import cv2
    import torch
    with torch.no_grad():
        lo = G.low(y)
        slo = G.low_of_means(sm)
        nz = [torch.randn(len(y), NOISE, 32, 32, device=y.device, generator=gen) for _ in range(2)]
        cols = [y, lo, lo + G(lo, nz[0]), lo + G(lo, nz[1]), slo, slo + G(slo, nz[0]), slo + G(slo, nz[1])]
        ims = [c.clamp(-1, 1).cpu().numpy() for c in cols]
    grid = np.concatenate([np.concatenate([im[i] for im in ims], 2) for i in range(len(y))], 1)
    grid = np.clip(np.rint((grid.transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)
    cv2.imwrite(os.path.join(args.run, "samples.png"), grid[..., ::-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=None, help="write --n fitting crops and --n-surrogates surrogates' means here and exit")
    ap.add_argument("--n", type=int, default=7000)
    ap.add_argument("--n-surrogates", type=int, default=3000)
    ap.add_argument("--quality", type=int, default=95, help="WebP quality of the packed crops (101: lossless)")
    ap.add_argument("--data", default=os.path.join(HERE, "runs", "sr", "pack.npz"))
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "sr"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=7)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps (tests)")
    ap.add_argument("--ckpt-minutes", type=float, default=1)
    ap.add_argument("--log-every", type=int, default=500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--rec", type=float, default=100.0, help="weight of the L1 loss on real crops' detail")
    ap.add_argument("--adv", type=float, default=1.0, help="weight of the adversarial loss")
    ap.add_argument("--ch", type=int, default=64)
    ap.add_argument("--ch-hi", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--dch", type=int, default=64)
    ap.add_argument("--init", default=None, help="a new run's generator from this generator.pt")
    ap.add_argument("--disc", default="pair", choices=["pair", "detail"],
                    help="the discriminator sees (low band, face) with surrogates' for G only, or the detail alone, "
                    "surrogates' detail among its fakes")
    args = ap.parse_args()
    if args.pack:
        pack(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
