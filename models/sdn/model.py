"""SDN for faceveil: an invertible key-conditioned flow (encoder = forward, decoder = its exact
inverse), a patch discriminator and a from-scratch identity/attribute classifier.

Flow (SDNFlow), on a 128x128 crop in -1..1, conditioned on the key (128 x +-1) and the attribute
factors (6, -2..2):
  1. KeyedWarp: a smooth displacement of the facial features and of the face's width and height,
     chosen by the key and the attributes (bicubic resampling; inverse by fixed-point iteration);
  2. ColourFlow: affine couplings on the 32x32 low-pass image (luma given chroma, chroma given
     luma), for shape, shading and colour;
  3. a bounded rescaling of the 4x4-block detail image plus a generated detail term.
The key reaches every part through random Fourier features (a hash-like spread: one flipped bit
moves every feature), the attributes through the same conditioning, so that they are part of the
secret and steer the result. Anonymize = forward(image, key, attrs); restore = inverse.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import centerface

KEY_BITS = 128
N_ATTR = 6

VARIANTS = {
    # low-pass flow G on the 32x32 image: blocks at 16x16/12ch, 8x8/48ch, 4x4/192ch and their
    # hidden widths; detail net width; conditioning width; coupling / detail log-scale bounds
    "fast": dict(blocks=8, width=64, detail=96, cond=256, smax=0.5, detail_smax=0.5),
    "full": dict(blocks=12, width=160, detail=192, cond=512, smax=0.5, detail_smax=0.5),
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
        # key/attribute conditioning as a multiplicative gain only (no additive FiLM bias, no output
        # bias): a spatially constant shift in squeezed space would be a periodic pixel pattern
        self.film = nn.Linear(cond, H)
        self.dw1 = nn.Conv2d(H, H, 3, padding=1, groups=H)
        self.pw = nn.Conv2d(H, H, 1)
        self.dw2 = nn.Conv2d(H, H, 3, padding=1, groups=H)
        self.out = nn.Conv2d(H, C, 1, bias=False)
        nn.init.normal_(self.out.weight, std=1e-3)  # near-identity start, symmetry broken
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def st(self, x1, c):
        gamma = self.film(c)[:, :, None, None]
        h = self.inp(x1)
        h = h * (1 + gamma)
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


def down4(x):
    return F.avg_pool2d(x, 4)


def up4(z):
    """Smooth 4x upsampling U with down4(U(z)) == z exactly: bilinear, plus a block-constant
    correction of what the bilinear step changed in the 4x4 block means."""
    u = F.interpolate(z, scale_factor=4.0, mode="bilinear", align_corners=False)
    return u + F.interpolate(z - F.avg_pool2d(u, 4), scale_factor=4.0, mode="nearest")


def proj(v):
    """Projection onto {r : down4(r) == 0} (detail images)."""
    return v - F.interpolate(F.avg_pool2d(v, 4), scale_factor=4.0, mode="nearest")


class MultiFlow(nn.Module):
    """Coupling flow on an image of size R: squeeze, blocks, squeeze, blocks, ..., un-squeeze."""

    def __init__(self, R, blocks, hidden, cond, smax, seed):
        super().__init__()
        self.levels = nn.ModuleList()
        self.shapes = []
        for lvl, (nb, H) in enumerate(zip(blocks, hidden)):
            C = 12 * 4 ** lvl
            bl = nn.ModuleList()
            for _ in range(nb):
                bl.append(Coupling(C, H, cond, smax, seed))
                seed += 1
            self.levels.append(bl)
            self.shapes.append((C, (R // 2 ** (lvl + 1)) ** 2, nb))
            # un-mix at the end of each level: the transpose of the product of the level's fixed
            # orthogonal mixings, so that the flow is (nearly) the identity at initialisation
            Q = torch.eye(C)
            for b in bl:
                Q = b.W @ Q
            self.register_buffer(f"U{lvl}", Q.t().contiguous())

    def forward(self, x, c):
        for lvl, blocks in enumerate(self.levels):
            x = squeeze(x)
            for b in blocks:
                x = b(x, c)
            x = F.conv2d(x, getattr(self, f"U{lvl}")[:, :, None, None])
        for _ in self.levels:
            x = unsqueeze(x)
        return x

    def inverse(self, y, c):
        for _ in self.levels:
            y = squeeze(y)
        for lvl in reversed(range(len(self.levels))):
            blocks = self.levels[lvl]
            y = F.conv2d(y, getattr(self, f"U{lvl}").t()[:, :, None, None])
            for b in reversed(blocks):
                y = b.inverse(y, c)
            y = unsqueeze(y)
        return y


class SmoothNet(nn.Module):
    """Coupling net with a U-shape (32 -> 16 -> 8 -> 16 -> 32): its outputs are built from
    bilinearly upsampled coarse features, so the edits it drives are spatially smooth."""

    def __init__(self, cin, cout, W, cond):
        super().__init__()
        self.inp = nn.Conv2d(cin, W, 3, padding=1)
        self.p1 = nn.Conv2d(W, 2 * W, 1)
        self.d1 = nn.Conv2d(2 * W, 2 * W, 3, padding=1, groups=2 * W)
        self.p2 = nn.Conv2d(2 * W, 2 * W, 1)
        self.d2 = nn.Conv2d(2 * W, 2 * W, 3, padding=1, groups=2 * W)
        self.film = nn.Linear(cond, 4 * W)
        self.p3 = nn.Conv2d(2 * W, 2 * W, 1)
        self.d3 = nn.Conv2d(2 * W, 2 * W, 3, padding=1, groups=2 * W)
        self.p4 = nn.Conv2d(2 * W, W, 1)
        self.d4 = nn.Conv2d(W, W, 3, padding=1, groups=W)
        self.out = nn.Conv2d(W, cout, 1)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.W = W

    def forward(self, x, c):
        h0 = F.silu(self.inp(x))                                   # 32
        h1 = F.silu(self.d1(self.p1(F.avg_pool2d(h0, 2))))         # 16
        h2 = self.d2(self.p2(F.avg_pool2d(h1, 2)))                 # 8
        gb = self.film(c)
        h2 = F.silu(h2 * (1 + gb[:, : 2 * self.W, None, None]) + gb[:, 2 * self.W:, None, None])
        h2 = F.silu(self.p3(h2))
        u1 = F.interpolate(h2, scale_factor=2.0, mode="bilinear", align_corners=False) + h1
        u1 = F.silu(self.p4(self.d3(u1)))                          # 16, W
        u0 = F.interpolate(u1, scale_factor=2.0, mode="bilinear", align_corners=False) + 0.5 * h0
        return self.out(self.d4(u0))


class ColourFlow(nn.Module):
    """Affine couplings on the 32x32 low-pass image split by colour: a fixed orthonormal
    luma/chroma transform, then alternately luma <- f(chroma) and chroma <- f(luma), each with a
    smooth U-shaped coupling net conditioned on the key/attribute embedding."""

    def __init__(self, nblocks, W, cond, smax):
        super().__init__()
        M = torch.tensor([[1, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=torch.float32)
        M = M / M.norm(dim=1, keepdim=True)
        self.register_buffer("M", M)
        self.nets = nn.ModuleList()
        for i in range(nblocks):
            if i % 2 == 0:
                self.nets.append(SmoothNet(2, 2, W, cond))   # luma given chroma -> (s, t)
            else:
                self.nets.append(SmoothNet(1, 4, W, cond))   # chroma given luma -> (s, t) x 2
        self.smax = smax

    def forward(self, x, c):
        x = F.conv2d(x, self.M[:, :, None, None])
        for i, net in enumerate(self.nets):
            if i % 2 == 0:
                h = net(x[:, 1:], c)
                s = self.smax * torch.tanh(h[:, :1])
                x = torch.cat([x[:, :1] * torch.exp(s) + h[:, 1:], x[:, 1:]], 1)
            else:
                h = net(x[:, :1], c)
                s = self.smax * torch.tanh(h[:, :2])
                x = torch.cat([x[:, :1], x[:, 1:] * torch.exp(s) + h[:, 2:]], 1)
        return F.conv2d(x, self.M.t()[:, :, None, None])

    def inverse(self, y, c):
        y = F.conv2d(y, self.M[:, :, None, None])
        for i in reversed(range(len(self.nets))):
            net = self.nets[i]
            if i % 2 == 0:
                h = net(y[:, 1:], c)
                s = self.smax * torch.tanh(h[:, :1])
                y = torch.cat([(y[:, :1] - h[:, 1:]) * torch.exp(-s), y[:, 1:]], 1)
            else:
                h = net(y[:, :1], c)
                s = self.smax * torch.tanh(h[:, :2])
                y = torch.cat([y[:, :1], (y[:, 1:] - h[:, 2:]) * torch.exp(-s)], 1)
        return F.conv2d(y, self.M.t()[:, :, None, None])


# Control points of the keyed warp in crop coordinates (-1..1, the runtime's CenterFace crop):
# eyes and mouth corners at the median CenterFace landmarks of 300 training crops, the rest
# placed around them.
WARP_POINTS = [
    (-0.29, -0.25), (0.29, -0.25),    # 0, 1 eyes
    (-0.29, -0.45), (0.29, -0.45),    # 2, 3 brows
    (0.0, -0.08), (0.0, 0.09),        # 4, 5 nose bridge, nose tip
    (-0.245, 0.36), (0.245, 0.36),    # 6, 7 mouth corners
    (0.0, 0.48), (0.0, 0.72),         # 8, 9 lower lip, chin
    (-0.52, 0.12), (0.52, 0.12),      # 10, 11 cheeks
    (-0.42, 0.55), (0.42, 0.55),      # 12, 13 jaw
    (0.0, -0.65),                     # 14 forehead
]

# Face proportions the warp changes, each a bounded parameter moving a group of points
# together and mirror-symmetrically (so that features move as features do between people,
# not one at a time): (limit, [(point, x factor, y factor), ...]).
WARP_GROUPS = [
    (0.045, [(0, -1, 0), (1, 1, 0), (2, -1, 0), (3, 1, 0)]),    # eye spacing (brows follow)
    (0.045, [(0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 0, 1)]),      # eye height (brows follow)
    (0.035, [(2, 0, 1), (3, 0, 1)]),                            # brow height
    (0.045, [(4, 0, 1)]),                                       # nose bridge
    (0.045, [(5, 0, 1)]),                                       # nose length
    (0.045, [(6, -1, 0), (7, 1, 0)]),                           # mouth width
    (0.045, [(6, 0, 1), (7, 0, 1), (8, 0, 1)]),                 # mouth height
    (0.03, [(8, 0, 1)]),                                        # lip
    (0.05, [(9, 0, 1)]),                                        # chin length
    (0.045, [(10, -1, 0), (11, 1, 0)]),                         # cheek width
    (0.035, [(10, 0, 1), (11, 0, 1)]),                          # cheek height
    (0.05, [(12, -1, 0), (13, 1, 0)]),                          # jaw width
    (0.04, [(12, 0, 1), (13, 0, 1)]),                           # jaw height
    (0.04, [(14, 0, 1)]),                                       # forehead
]
# Natural faces are not quite symmetric: each point may also move a little on its own.
WARP_ASYMMETRY = 0.012


class KeyedWarp(nn.Module):
    """A smooth, exactly invertible geometric change of the face: its proportions (WARP_GROUPS:
    eye spacing, nose length, mouth width, jaw, ...) moved as Gaussian bumps around WARP_POINTS
    (width `radius`), plus a change of face width and height, all set by the key features and
    the attribute factors through a learned, bounded linear map. The output pixel p samples the
    input at T(p) = p - v(p) (bicubic); since the field's Lipschitz constant stays well below 1,
    T is invertible and the inverse sampling point is the fixed point of p = q + v(p), found by
    iteration. Moving the geometry of a real face keeps it a real face, which a from-scratch
    generator trained for minutes cannot do."""

    def __init__(self, n_key_features, smax=0.05, radius=0.22, iterations=12):
        super().__init__()
        self.register_buffer("pts", torch.tensor(WARP_POINTS, dtype=torch.float32))
        n, g = len(WARP_POINTS), len(WARP_GROUPS)
        basis = torch.zeros(g, n, 2)
        for i, (limit, members) in enumerate(WARP_GROUPS):
            for point, fx, fy in members:
                basis[i, point] = torch.tensor([fx * limit, fy * limit])
        self.register_buffer("basis", basis)
        self.smax, self.radius, self.iterations = smax, radius, iterations
        self.n_params = g + 2 * n + 2
        self.from_key = nn.Linear(n_key_features, self.n_params)
        self.from_attr = nn.Linear(N_ATTR, self.n_params, bias=False)
        # key features are sin(.) of variance 1/2: this spreads the parameters over their range
        nn.init.normal_(self.from_key.weight, std=1.5 / math.sqrt(n_key_features))
        nn.init.zeros_(self.from_key.bias)
        nn.init.normal_(self.from_attr.weight, std=0.1)

    def params(self, kf, attrs):
        h = torch.tanh(self.from_key(kf) + self.from_attr(attrs * 0.5))
        n, g = len(WARP_POINTS), len(WARP_GROUPS)
        d = torch.einsum("bg,gpc->bpc", h[:, :g], self.basis) + WARP_ASYMMETRY * h[:, g:g + 2 * n].view(-1, n, 2)
        sc = self.smax * h[:, g + 2 * n:]
        return d, sc

    def field(self, p, d, sc):
        """v(p) for sampling points p [N,H,W,2] (x, y)."""
        diff = p[:, :, :, None, :] - self.pts[None, None, None]                  # N,H,W,P,2
        w = torch.exp(-(diff * diff).sum(-1) / (2 * self.radius ** 2))            # N,H,W,P
        v = (w[..., None] * d[:, None, None]).sum(3)                              # N,H,W,2
        env = torch.exp(-(p * p).sum(-1, keepdim=True) / (2 * 0.55 ** 2))
        return v + sc[:, None, None, :] * p * env

    @staticmethod
    def grid(n, h, w, like):
        """Pixel-centre coordinates (x, y) in -1..1 of an h x w image, [n,h,w,2]."""
        ty = (torch.arange(h, dtype=like.dtype, device=like.device) + 0.5) * 2 / h - 1
        tx = (torch.arange(w, dtype=like.dtype, device=like.device) + 0.5) * 2 / w - 1
        gy, gx = torch.meshgrid(ty, tx, indexing="ij")
        return torch.stack([gx, gy], -1)[None].expand(n, h, w, 2)

    def upsampled(self, disp, h, w):
        """A displacement [n,c,c,2] on the coarse grid, bilinearly resampled to h x w."""
        return F.interpolate(disp.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)

    # The field is smooth (bumps of radius 0.22, about 14 px at 128): evaluated on a 32 x 32
    # grid and interpolated, it is off by a few hundredths of a pixel and 16 times cheaper,
    # which matters for the inverse's fixed-point iterations.
    COARSE = 32

    def forward(self, x, kf, attrs):
        d, sc = self.params(kf, attrs)
        n, _, h, w = x.shape
        pc = self.grid(n, self.COARSE, self.COARSE, x)
        v = self.upsampled(self.field(pc, d, sc), h, w)
        return F.grid_sample(x, self.grid(n, h, w, x) - v, mode="bicubic", padding_mode="border", align_corners=False)

    def inverse(self, y, kf, attrs):
        d, sc = self.params(kf, attrs)
        n, _, h, w = y.shape
        qc = self.grid(n, self.COARSE, self.COARSE, y)
        pc = qc
        for _ in range(self.iterations):
            pc = qc + self.field(pc, d, sc)
        p = self.grid(n, h, w, y) + self.upsampled(pc - qc, h, w)
        return F.grid_sample(y, p, mode="bicubic", padding_mode="border", align_corners=False)


class SDNFlow(nn.Module):
    """x (128) -> x = W(x; key, attrs), the keyed warp (geometry), then
    low = down4(x) (32x32), detail r = x - up4(low) (down4(r) == 0).
    low' = G(low; key, attrs)   (coupling flow on the 32x32 image: identity / shape / colour edits)
    r'   = r * exp(s) + proj(t)  with (s, t) = Hnet(low', key, attrs); s is constant on 4x4 blocks,
                                 so r*exp(s) stays a detail image
    y    = up4(low') + r'
    Inverse: low' = down4(y) (exact, since down4(up4(z)) == z and down4(r') == 0), r' = y - up4(low'),
    r = (r' - proj(t)) * exp(-s), low = G^-1(low'), x = W^-1(up4(low) + r).
    The identity-changing part works on a smooth low-pass image, so its edits cannot be
    pixel-grid textures; details are re-scaled (bounded) and overlaid, never discarded."""

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
        self.register_buffer("Pa", torch.randn(N_ATTR, 256, generator=g) * 1.5)
        self.cond = nn.Sequential(nn.Linear(256 + N_ATTR, cd), nn.SiLU(), nn.Linear(cd, cd), nn.SiLU(),
                                  nn.Linear(cd, cd), nn.SiLU())
        self.warp = KeyedWarp(256)
        self.G = ColourFlow(cfg["blocks"], cfg["width"], cd, cfg["smax"])
        Hd = cfg["detail"]
        self.dsmax = cfg["detail_smax"]
        self.h_in = nn.Conv2d(3, Hd, 3, padding=1)
        self.h_film = nn.Linear(cd, Hd)
        self.h_dw1 = nn.Conv2d(Hd, Hd, 3, padding=1, groups=Hd)
        self.h_pw = nn.Conv2d(Hd, Hd, 1)
        self.h_dw2 = nn.Conv2d(Hd, Hd, 3, padding=1, groups=Hd)
        self.h_out = nn.Conv2d(Hd, 3 + 48, 1, bias=False)
        nn.init.normal_(self.h_out.weight, std=1e-3)
        nn.init.zeros_(self.h_film.weight)
        nn.init.zeros_(self.h_film.bias)
        self.Hd = Hd

    def key_features(self, key, attrs):
        """Random Fourier features of the key, their phases also moved by the attribute factors:
        the factors are part of the secret (another combination acts like another key) while a
        small change of a factor moves the features, and the face, only a little."""
        return torch.sin(key @ self.Pk + attrs @ self.Pa + self.bk)

    def embed(self, key, attrs):
        return self.cond(torch.cat([self.key_features(key, attrs), attrs * 0.5], 1))

    def detail_st(self, low, c):
        h = self.h_in(low)
        h = h * (1 + self.h_film(c)[:, :, None, None])
        h = F.silu(h)
        h = F.silu(self.h_pw(self.h_dw1(h)))
        h = self.h_out(self.h_dw2(h))
        s = self.dsmax * torch.tanh(h[:, :3])
        s = F.interpolate(s, scale_factor=4.0, mode="nearest")
        t = proj(F.pixel_shuffle(h[:, 3:], 4))
        return s, t

    def forward(self, x, key, attrs):
        c = self.embed(key, attrs)
        x = self.warp(x, self.key_features(key, attrs), attrs)
        low = down4(x)
        r = x - up4(low)
        low2 = self.G(low, c)
        s, t = self.detail_st(low2, c)
        return up4(low2) + r * torch.exp(s) + t

    def inverse(self, y, key, attrs):
        c = self.embed(key, attrs)
        low2 = down4(y)
        r2 = y - up4(low2)
        s, t = self.detail_st(low2, c)
        r = (r2 - t) * torch.exp(-s)
        low = self.G.inverse(low2, c)
        return self.warp.inverse(up4(low) + r, self.key_features(key, attrs), attrs)


# The anonymized face is bent into the displayable range, not cut off at it: what a cut loses is
# gone for the restore too (up to 30% of a sunlit face's pixels on the juggler clip, where restores
# fell to 21 dB with no codec at all), what a bend keeps the restore unbends. Values up to
# RANGE_KNEE pass unchanged, so an anonymized face looks the same but for its extremes.
RANGE_KNEE = 0.9


def bend(y, knee=RANGE_KNEE):
    a, c = y.abs(), 1 - knee
    return torch.where(a <= knee, y, torch.sign(y) * (knee + c * torch.tanh((a - knee) / c)))


def unbend(u, knee=RANGE_KNEE):
    a, c = u.abs(), 1 - knee
    # a quantised or compressed pixel can sit at the very edge, where the exact inverse is infinite
    t = ((a - knee) / c).clamp(-0.999, 0.999)
    atanh = 0.5 * torch.log((1 + t) / (1 - t))  # torch.atanh has no ONNX export
    return torch.where(a <= knee, u, torch.sign(u) * (knee + c * atanh))


def blend_mask(size, blend):
    """The feathered ellipse the runtime blends an anonymized crop with, as a [1,1,S,S] tensor."""
    return torch.from_numpy(centerface.blend_mask(size, **blend))[None, None]


class Anonymize(nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, image, key, attributes):
        return bend(self.flow(image, key, attributes))


class Restore(nn.Module):
    """Unbends the anonymized face where the runtime blended it in (the frame around it was never
    bent), then inverts the flow."""

    def __init__(self, flow, blend):
        super().__init__()
        self.flow = flow
        self.register_buffer("mask", blend_mask(128, blend))

    def forward(self, image, key, attributes):
        image = self.mask * unbend(image) + (1 - self.mask) * image
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
    return 2 * macs[0] / 1e9
