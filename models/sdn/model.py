"""SDN for faceveil: an invertible key-conditioned flow (encoder = forward, decoder = exact inverse),
a patch discriminator and a from-scratch identity/attribute classifier.

Flow: image [N,3,128,128] in -1..1 -> squeeze (space-to-depth 2) -> 12x64x64 -> coupling blocks ->
squeeze -> 48x32x32 -> blocks -> squeeze -> 192x16x16 -> blocks -> depth-to-space x3 -> image.
Each block: fixed random orthogonal 1x1 channel mixing (inverse = transpose), then an affine
coupling y2 = x2*exp(s) + t with s = smax*tanh(.) bounded, where (s,t) = net(x1, cond) and cond is an
MLP embedding of [key (128 x +-1), attributes (6, -2..2)] applied as FiLM on the coupling net's
hidden features. Anonymize = forward(image, key, attrs); restore = inverse(image, key, attrs).
The 16x16x192 level is the latent where the attribute factors act most strongly (they condition
every block, so editing is "adding" a conditioned shift to the latent rather than a fixed direction).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

KEY_BITS = 128
N_ATTR = 6

VARIANTS = {
    # (blocks at 64x64/12ch, 32x32/48ch, 16x16/192ch), hidden widths, cond width
    "fast": dict(blocks=(2, 4, 3), hidden=(32, 64, 112), cond=256, smax=0.5),
    "full": dict(blocks=(4, 6, 8), hidden=(64, 160, 384), cond=512, smax=0.5),
}


def squeeze(x):
    n, c, h, w = x.shape
    x = x.reshape(-1, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(-1, c * 4, h // 2, w // 2)


def unsqueeze(x):
    n, c, h, w = x.shape
    x = x.reshape(-1, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(-1, c // 4, h * 2, w * 2)


class Coupling(nn.Module):
    def __init__(self, C, H, cond, smax, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(C, C, generator=g))
        self.register_buffer("W", q.contiguous())
        self.C, self.H, self.smax = C, H, smax
        h = C // 2
        self.inp = nn.Conv2d(h, H, 1)
        self.film = nn.Linear(cond, 2 * H)
        self.dw1 = nn.Conv2d(H, H, 3, padding=1, groups=H)
        self.pw = nn.Conv2d(H, H, 1)
        self.dw2 = nn.Conv2d(H, H, 3, padding=1, groups=H)
        self.out = nn.Conv2d(H, C, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def st(self, x1, c):
        gb = self.film(c)
        gamma, beta = gb[:, : self.H, None, None], gb[:, self.H:, None, None]
        h = self.inp(x1)
        h = h * (1 + gamma) + beta
        h = F.silu(h)
        h = F.silu(self.pw(self.dw1(h)))
        h = self.out(self.dw2(h))
        s, t = h[:, : self.C // 2], h[:, self.C // 2:]
        return self.smax * torch.tanh(s), t

    def forward(self, x, c):
        x = F.conv2d(x, self.W[:, :, None, None])
        x1, x2 = x[:, : self.C // 2], x[:, self.C // 2:]
        s, t = self.st(x1, c)
        return torch.cat([x1, x2 * torch.exp(s) + t], 1)

    def inverse(self, y, c):
        y1, y2 = y[:, : self.C // 2], y[:, self.C // 2:]
        s, t = self.st(y1, c)
        x = torch.cat([y1, (y2 - t) * torch.exp(-s)], 1)
        return F.conv2d(x, self.W.t()[:, :, None, None])


class SDNFlow(nn.Module):
    def __init__(self, variant="fast"):
        super().__init__()
        cfg = VARIANTS[variant]
        self.variant = variant
        cd = cfg["cond"]
        # key diffusion: fixed random projection + sine (random Fourier features), so that flipping a
        # single key bit moves every feature by a random phase (~2 rad): a hash-like spread of keys
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("Pk", torch.randn(KEY_BITS, 256, generator=g))
        self.register_buffer("bk", torch.rand(256, generator=g) * 2 * math.pi)
        self.cond = nn.Sequential(nn.Linear(256 + N_ATTR, cd), nn.SiLU(), nn.Linear(cd, cd), nn.SiLU(),
                                  nn.Linear(cd, cd), nn.SiLU())
        self.levels = nn.ModuleList()
        seed = 1
        for lvl, (nb, H) in enumerate(zip(cfg["blocks"], cfg["hidden"])):
            C = 12 * 4 ** lvl
            blocks = nn.ModuleList()
            for _ in range(nb):
                blocks.append(Coupling(C, H, cd, cfg["smax"], seed))
                seed += 1
            self.levels.append(blocks)
            # un-mix at the end of each level: the transpose of the product of the level's fixed
            # orthogonal mixings, so that the flow is exactly the identity at initialisation
            Q = torch.eye(C)
            for b in blocks:
                Q = b.W @ Q
            self.register_buffer(f"U{lvl}", Q.t().contiguous())

    def embed(self, key, attrs):
        kf = torch.sin(key @ self.Pk + self.bk)
        return self.cond(torch.cat([kf, attrs * 0.5], 1))

    def forward(self, x, key, attrs):
        c = self.embed(key, attrs)
        for lvl, blocks in enumerate(self.levels):
            x = squeeze(x)
            for b in blocks:
                x = b(x, c)
            x = F.conv2d(x, getattr(self, f"U{lvl}")[:, :, None, None])
        for _ in self.levels:
            x = unsqueeze(x)
        return x

    def inverse(self, y, key, attrs):
        c = self.embed(key, attrs)
        for _ in self.levels:
            y = squeeze(y)
        for lvl in reversed(range(len(self.levels))):
            blocks = self.levels[lvl]
            y = F.conv2d(y, getattr(self, f"U{lvl}").t()[:, :, None, None])
            for b in reversed(blocks):
                y = b.inverse(y, c)
            y = unsqueeze(y)
        return y


class Anonymize(nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, image, key, attributes):
        return torch.clamp(self.flow(image, key, attributes), -1, 1)


class Restore(nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, image, key, attributes):
        return torch.clamp(self.flow.inverse(image, key, attributes), -1, 1)


class Discriminator(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, ch, 4, 2, 1)), nn.LeakyReLU(0.2),            # 64
            sn(nn.Conv2d(ch, ch * 2, 4, 2, 1)), nn.LeakyReLU(0.2),       # 32
            sn(nn.Conv2d(ch * 2, ch * 4, 4, 2, 1)), nn.LeakyReLU(0.2),   # 16
            sn(nn.Conv2d(ch * 4, ch * 8, 4, 2, 1)), nn.LeakyReLU(0.2),   # 8
            sn(nn.Conv2d(ch * 8, 1, 3, 1, 1)))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        self.b1 = nn.GroupNorm(8, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.GroupNorm(8, cout)
        self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.GroupNorm(8, cout))

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(h)) + self.sc(x))


class Classifier(nn.Module):
    """Feature extractor trained from scratch: 128-d identity embedding (cosine-softmax identity head)
    and 6 attribute logits. Works on the 128 crop downsampled to 64."""

    def __init__(self, n_ids, emb=128):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.GroupNorm(8, 32), nn.ReLU())
        self.body = nn.Sequential(Block(32, 64), Block(64, 128), Block(128, 256), Block(256, 256))  # 4x4
        self.emb = nn.Linear(256 * 16, emb)
        self.attr = nn.Linear(256 * 16, N_ATTR)
        self.ids = nn.Parameter(torch.randn(n_ids, emb) * 0.01)

    def forward(self, x):
        x = F.avg_pool2d(x, 2)
        h = self.body(self.stem(x)).flatten(1)
        e = F.normalize(self.emb(h), dim=1)
        return e, self.attr(h)

    def id_logits(self, e, labels=None, s=30.0, m=0.2):
        cos = e @ F.normalize(self.ids, dim=1).t()
        if labels is not None:
            cos = cos - m * F.one_hot(labels, cos.shape[1])
        return s * cos


def count_gflops(module, *inputs):
    """2 x multiply-accumulates of Conv2d/Linear/elementwise-free count for one call (batch 1)."""
    macs = [0]

    def conv_hook(m, i, o):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs[0] += o.numel() * k

    def lin_hook(m, i, o):
        macs[0] += o.numel() * m.in_features

    hs = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hs.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hs.append(m.register_forward_hook(lin_hook))
    # the fixed 1x1 mixing uses F.conv2d directly: count it by hand
    with torch.no_grad():
        module(*inputs)
    for h in hs:
        h.remove()
    flow = module.flow if hasattr(module, "flow") else module
    for lvl, blocks in enumerate(flow.levels):
        C = 12 * 4 ** lvl
        hw = (64 // 2 ** lvl) ** 2
        macs[0] += (len(blocks) + 1) * C * C * hw
    return 2 * macs[0] / 1e9
