"""Train the detail generator against a discriminator (tried after sdn-0.6.2; see MODEL_CARD.md).

    deps/sdn-venv/bin/python models/sdn/train_gan.py --pack models/sdn/runs/gan/pack.npz [--n 10000]
        # canonical faces of random fitting crops, lossless WebP, for a machine without ../shared
    python3 models/sdn/train_gan.py --data PACK --run RUN [--minutes 6] [--device cuda]
        # resumable: continues from RUN/ckpt.pt; writes RUN/generator.pt, RUN/log.json, RUN/samples.png
    deps/sdn-venv/bin/python models/sdn/train_detail.py --write RUN --alpha 0 --key-eps 1 --out X.npz
        # facespace.npz + the generator -> X.npz, judged by quick_judge.py --numpy --npz X.npz

At alpha = 0 the anonymized face keeps none of the original's detail inside the mask's core: in
the canonical frame it is mu + Syn z' + (1 - mask) r + h, with h the generated layer (mask times
G of the anonymized low-resolution face, minus its part in the face space, as
facespace.detail_layer adds it). G (train_detail.DetailNet, so that facespace.py and export.py
run it unchanged) is trained on the fitting crops only (split == 0, training identities) with
  - an L1 loss between h and the face's own detail band (projected the same way), on faces that
    are not rotated: G has to draw the detail a face of that low-resolution appearance has;
  - a hinge loss from a patch discriminator that sees real canonical faces against anonymized
    ones, half of them rotated by random keys (with the keyed shift det_eps of G's input that
    train_detail.py --key-eps writes), so that G also draws believable detail for the faces
    anonymize actually makes. Real and anonymized faces get the same random flips and shifts.
No dlib, no pretrained network.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from facespace import FaceSpace  # noqa: E402
from train_detail import make_net  # noqa: E402

KEY_SEED = 17  # train_detail.write's det_Wk: the same keyed shift of G's input


def pack(args):
    """Masked canonical faces (uint8, zero outside the support) of --n random fitting crops."""
    import cv2
    from fit import load_data, warp_all
    fs = FaceSpace.load(os.path.join(HERE, "facespace.npz"))
    lab, shards = load_data(os.path.join(HERE, "data"))
    fit = np.nonzero(lab["split"] == 0)[0]
    idx = np.sort(np.random.RandomState(args.seed).choice(fit, size=min(args.n, len(fit)), replace=False))
    lab["landmarks"] = np.tile(fs.mean_landmarks.astype(np.float32), (len(lab["landmarks"]), 1))  # align = 0
    G = fs.G
    sup = np.zeros(3 * G * G, bool)
    sup[fs.support] = True
    blobs = []
    for s in range(0, len(idx), 1000):
        X = warp_all(lab, shards, fs.tps_T, G, idx[s:s + 1000], int(lab["store"])).reshape(-1, 3 * G * G) * sup
        u8 = np.clip(np.rint((X.reshape(-1, 3, G, G).transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)
        blobs += [cv2.imencode(".webp", im[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes() for im in u8]
    off = np.cumsum([0] + [len(b) for b in blobs])
    os.makedirs(os.path.dirname(os.path.abspath(args.pack)), exist_ok=True)
    np.savez(args.pack, blob=np.frombuffer(b"".join(blobs), np.uint8), offsets=off, idx=idx, G=G)
    print(f"packed {len(idx)} crops, {off[-1] / 2**20:.1f} MiB -> {args.pack}", flush=True)


def unpack(path):
    import cv2
    z = np.load(path)
    b, off = z["blob"], z["offsets"]
    ims = [cv2.imdecode(b[off[i]:off[i + 1]], cv2.IMREAD_COLOR)[..., ::-1] for i in range(len(off) - 1)]
    return np.stack(ims).transpose(0, 3, 1, 2)  # [n,3,G,G] uint8 RGB


def make_disc(ch=64):
    import torch.nn as nn
    sn = nn.utils.spectral_norm

    def block(i, o, s):
        return [sn(nn.Conv2d(i, o, 4 if s == 2 else 3, s, 1)), nn.LeakyReLU(0.2)]
    return nn.Sequential(*block(3, ch, 2), *block(ch, 2 * ch, 2), *block(2 * ch, 4 * ch, 2),
                         *block(4 * ch, 4 * ch, 1), sn(nn.Conv2d(4 * ch, 1, 3, 1, 1)))  # 8 x 8 patch logits


class Space:
    """The face space's pieces the loss needs, as tensors on the device (alpha = 0)."""

    def __init__(self, fs, dev):
        import torch
        t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
        self.G = fs.G
        self.sup = torch.tensor(np.asarray(fs.support), device=dev)
        self.mu, self.mask = t(fs.mu), t(fs.mask)
        self.anaT, self.synT, self.anaaT = t(fs.ana.T), t(fs.syn.T), t(fs.ana_alpha.T)
        self.Q = t(fs.Q)
        self.rot_O, self.rot_A, self.rot_b = t(fs.rot_O), t(fs.rot_A), t(fs.rot_b)
        self.Wk = t(np.random.RandomState(KEY_SEED).randn(fs.Q.shape[1], 128))
        self.dev = dev

    def img(self, v):
        import torch
        full = torch.zeros(len(v), 3 * self.G * self.G, device=self.dev)
        full[:, self.sup] = v
        return full.reshape(len(v), 3, self.G, self.G)

    def vec(self, im):
        return im.reshape(len(im), -1)[:, self.sup]

    def rotate(self, u, keys):
        """facespace.FaceSpace.rotate (forward) in torch."""
        import torch
        th = torch.einsum("lik,nk->nli", self.rot_A, keys) + self.rot_b[None]
        c, s = torch.cos(th), torch.sin(th)
        for i in range(self.rot_O.shape[0]):
            u = u @ self.rot_O[i].T
            e, o = u[:, 0::2], u[:, 1::2]
            u = torch.stack([c[:, i] * e - s[:, i] * o, s[:, i] * e + c[:, i] * o], -1).reshape(u.shape)
        return u

    def project(self, p):
        """mask * p minus its part in the face space (the analysis restore uses): what the layer adds."""
        g = p * self.mask
        return g - (g @ self.anaaT) @ self.synT

    def anonymize(self, net, z, r, keys, rotate, key_eps):
        """Faces of coordinates z and detail bands r anonymized at alpha = 0, as vectors: the
        face without the generated layer, and the layer h (the face is their sum). rotate [N]
        picks the faces the keys rotate; the others keep their coordinates, and G sees them
        without the keyed shift."""
        m = rotate[:, None]
        u = z @ self.Q
        z2 = z + (self.rotate(u, keys) - u) @ self.Q.T * m
        zin = z2 + key_eps * ((keys @ self.Wk.T) / np.sqrt(128)) @ self.Q.T * m
        h = self.project(self.vec(net(self.img(self.mu + zin @ self.synT))))
        return self.mu + z2 @ self.synT + (1 - self.mask) * r, h


def train(args):
    import torch
    import torch.nn.functional as F
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    fs = FaceSpace.load(os.path.join(HERE, "facespace.npz"), alpha=np.array(0.0))
    S = Space(fs, dev)
    u8 = unpack(args.data)
    v = S.vec(torch.tensor(u8, device=dev).float() / 127.5 - 1)  # [n,D] masked canonical faces
    nval = min(256, len(v) // 8)
    z = (v - S.mu) @ S.anaT
    r = v - S.mu - z @ S.synT
    net = make_net(args.c1, args.c2, S.G).to(dev)
    disc = make_disc(args.dch).to(dev)
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
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed + step)
    ntr = len(v) - nval
    B, half = args.batch, args.batch // 2

    def augment(ims, flip, shift):
        """Mirror (flip) and move by whole pixels (shift, -p..p; zeros come in), one resampling."""
        theta = torch.zeros(len(ims), 2, 3, device=dev)
        theta[:, 0, 0] = 1 - 2 * flip.float()
        theta[:, 1, 1] = 1
        theta[:, :, 2] = -2 * shift.float() / S.G
        grid = F.affine_grid(theta, list(ims.shape), align_corners=False)
        return F.grid_sample(ims, grid, mode="nearest", padding_mode="zeros", align_corners=False)

    def anonymized(b, rotate):
        """Anonymized faces of the batch b under random keys, and their layers; rotate [B] bool."""
        keys = torch.where(torch.rand(len(b), 128, device=dev, generator=gen) < 0.5, -1.0, 1.0)
        face, h = S.anonymize(net, z[b], r[b], keys, rotate, args.key_eps)
        return face + h, h

    t0 = time.time()
    last = t0
    while time.time() - t0 < args.minutes * 60 and (args.steps is None or step < args.steps):
        b = torch.randint(0, ntr, (B,), device=dev, generator=gen) + nval
        br = torch.randint(0, ntr, (B,), device=dev, generator=gen) + nval
        rot = torch.arange(B, device=dev) >= half  # the second half rotated
        flip = torch.rand(B, device=dev, generator=gen) < 0.5
        shift = torch.randint(-args.shift, args.shift + 1, (B, 2), device=dev, generator=gen)
        fake, h = anonymized(b, rot)
        fake_im = augment(S.img(fake), flip, shift)
        real_im = augment(S.img(v[br]), flip, shift)
        # discriminator
        ld = F.relu(1 - disc(real_im)).mean() + F.relu(1 + disc(fake_im.detach())).mean()
        od.zero_grad(set_to_none=True)
        ld.backward()
        od.step()
        # generator
        adv = -disc(fake_im).mean()
        target = S.project(r[b[:half]])
        rec = ((h[:half] - target).abs() * S.mask).sum() / (S.mask.sum() * half)
        lg = args.rec * rec + args.adv * adv
        og.zero_grad(set_to_none=True)
        lg.backward()
        og.step()
        step += 1
        if step % args.log_every == 0:
            with torch.no_grad():
                vb = torch.arange(nval, device=dev)
                _, hv = anonymized(vb, torch.zeros(nval, dtype=torch.bool, device=dev))
                tv = S.project(r[vb])
                vrec = ((hv - tv).abs() * S.mask).sum() / (S.mask.sum() * nval)
                energy = (hv.std() / tv.std()).item()
            log.append(dict(step=step, seconds=round(time.time() - t0, 1), d=ld.item(), adv=adv.item(), rec=rec.item(),
                            val_rec=vrec.item(), val_energy_ratio=round(energy, 4)))
            print(json.dumps(log[-1]), flush=True)
        if time.time() - last > args.ckpt_minutes * 60:
            save(ck, net, disc, og, od, step, log, args)
            last = time.time()
    save(ck, net, disc, og, od, step, log, args)
    with open(os.path.join(args.run, "log.json"), "w") as f:
        json.dump(dict(args=vars(args), train_crops=int(ntr), val_crops=nval, log=log), f, indent=1)
    samples(args, S, v, z, r, net)
    print(f"saved {ck} at step {step} ({time.time() - t0:.0f}s)", flush=True)


def save(ck, net, disc, og, od, step, log, args):
    """RUN/ckpt.pt (everything, to resume; over 16 MiB) and RUN/generator.pt (what
    train_detail.py --write reads; under 1 MiB, so that it comes back from a GPU machine)."""
    import torch
    cpu = lambda sd: {k: t.detach().cpu() for k, t in sd.items()}  # noqa: E731
    small = dict(net=cpu(net.state_dict()), step=step, log=log, args=vars(args))
    for path, state in [(ck, dict(small, disc=cpu(disc.state_dict()), opt=og.state_dict(), opt_d=od.state_dict())),
                        (os.path.join(os.path.dirname(ck), "generator.pt"), small)]:
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)


def samples(args, S, v, z, r, net):
    """RUN/samples.png: rows of validation faces: original, its low-resolution face, anonymized
    without rotation (G's detail on its own low-resolution face), two random keys."""
    import cv2
    import torch
    n = 8
    b = torch.arange(n, device=S.dev)
    with torch.no_grad():
        cols = [v[b], S.mu + z[b] @ S.synT]
        for k in range(3):
            gk = torch.Generator(device=S.dev)
            gk.manual_seed(100 + k)
            keys = torch.where(torch.rand(n, 128, device=S.dev, generator=gk) < 0.5, -1.0, 1.0)
            face, h = S.anonymize(net, z[b], r[b], keys, torch.full((n,), k > 0, device=S.dev), args.key_eps)
            if k > 0:
                cols.append(face)
            cols.append(face + h)
        ims = [S.img(c).clamp(-1, 1).cpu().numpy() for c in cols]
    grid = np.concatenate([np.concatenate([im[i] for im in ims], 2) for i in range(n)], 1)
    grid = np.clip(np.rint((grid.transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(os.path.join(args.run, "samples.png"), grid[..., ::-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default=None, help="write the canonical faces of --n fitting crops here and exit")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--data", default=os.path.join(HERE, "runs", "gan", "pack.npz"))
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "gan"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=6)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps (tests)")
    ap.add_argument("--ckpt-minutes", type=float, default=1)
    ap.add_argument("--log-every", type=int, default=500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--rec", type=float, default=10.0, help="weight of the L1 loss on unrotated faces")
    ap.add_argument("--adv", type=float, default=1.0, help="weight of the adversarial loss")
    ap.add_argument("--shift", type=int, default=2, help="random shifts of up to this many pixels, real and fake alike")
    ap.add_argument("--key-eps", type=float, default=1.0, help="as train_detail.py --key-eps (write with the same)")
    ap.add_argument("--c1", type=int, default=32)
    ap.add_argument("--c2", type=int, default=48)
    ap.add_argument("--dch", type=int, default=64)
    args = ap.parse_args()
    if args.pack:
        pack(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
