"""The sdn face space (0.6.x) in numpy: the same computation as the exported ONNX graphs.

    from facespace import FaceSpace
    fs = FaceSpace.load("models/sdn")                 # reads models/sdn/facespace.npz
    ids, rest = fs.split(crops, landmarks)            # crops [N,3,128,128] float -1..1, landmarks [N,10]
    out = fs.merge(ids2, rest)                        # crops with identity coordinates ids2 (not bent)
    y = bend(fs.merge(fs.rotate(ids, keys), rest, detail=fs.alpha))   # == fs.anonymize(crops, landmarks, keys)
    y = fs.anonymize(crops, landmarks, keys, attrs)   # keys [N,128] +-1, attrs [N,6]
    x = fs.restore(y, landmarks, keys, attrs)
    both = GreyAndColour.load("models/sdn")          # with facespace_grey.npz: grey faces through it

Geometry. Every coordinate is crop-normalised (0 = the crop's left/top edge, 1 = its right/bottom
edge). CenterFace's 5 landmarks l (left eye, right eye, nose, mouth left, mouth right; x,y each)
define a thin-plate spline f_l from the canonical frame to the crop with f_l(mean landmarks) = l;
it is linear in l, so the canonical sampling grid is one constant matrix times l. The canonical
face is sampled at 2G x 2G (bilinear, as ONNX GridSample with align_corners=0 and border padding)
over the square window `window` = (x0, y0, side) and averaged 2x2 down to G x G; only the pixels
inside the face mask (an ellipse with a feathered rim, no hair or background) are modelled.

Model. With v the masked canonical pixels (D values), z = Ana (v - mu) are whitened coordinates
(K of them; Ana is the pseudo-inverse of the mask-tapered synthesis basis Syn, so Ana Syn = I and
a change Syn dz added to the canonical face reads back as dz). The rotated ("identity")
coordinates are u = Q^T z (Q [K,m] orthonormal, chosen by fit.py: in sdn-0.6.3 every whitened
direction but the kept tone and age and the 4 largest; in sdn-0.6.2 the LDA directions of the
CelebA training identities).
`rest` is everything else: the crop itself, its landmarks and z.

Anonymize (key k, attributes a): u' = R(k) u, z' = z + Q (u' - u) + E a; the canonical change
Syn (z' - z) is warped back onto the crop by the inverse spline (fixed-point iteration
p <- p + A^-1 (q - f(p)), A the spline's affine part) and added; values past +-0.6 are bent
into -1..1 by a tanh (bend()), which restore undoes (unbend()).
R(k) = G_L(k) O_L ... G_1(k) O_1: fixed random orthogonal matrices O_i and Givens rotations of
coordinate pairs (0,1),(2,3),... by angles theta_i = Akey_i k + bkey_i. Restore inverts the
whole affine map of the crop by a few fixed-point steps (see restore()).

Faces cut by the frame's edge. The runtime's grid repeats the frame's edge where the crop reaches
past it, and those samples are not written back. `inside` [N,1,128,128] (1 where a grid sample
lies in the frame) makes both directions read a face's whitened coordinates from the canonical
samples that read only such grid samples (a weighted least-squares fit, coordinates()),
and leaves the detail term off the others, so that the restore reads back exactly what the
anonymize wrote wherever the frame holds it (MODEL_CARD.md, "sdn-0.6.5").

Attacks without a key use split/merge on a surrogate: e.g. merge(-ids, rest) negates its identity
coordinates, merge(2 * ids, rest) rescales them. The shipped facespace.npz has align = 0: the
graphs (and this class) warp by the mean landmarks whatever landmarks they are given, because the
face's own landmarks keep its geometry, which dlib reads as identity (MODEL_CARD.md).
"""
import os

import numpy as np

ATTRIBUTES = ["smiling", "mouth_slightly_open", "mustache", "eyeglasses", "male", "young"]


# The smallest share of the original's detail that restore scales back up (by its inverse).
DETAIL_FLOOR = 0.25


def tps_kernel(r2):
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-20))


def tps_solve_matrix(c, lam=0.0):
    """c [5,2] canonical control points -> Minv [8,5]: coefficients (w[5], a0, ax, ay) = Minv @ l."""
    n = len(c)
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    L = np.zeros((n + 3, n + 3))
    L[:n, :n] = tps_kernel(d2) + lam * np.eye(n)
    L[:n, n] = 1
    L[:n, n + 1:] = c
    L[n, :n] = 1
    L[n + 1:, :n] = c.T
    return np.linalg.inv(L)[:, :n]


def tps_basis(p, c):
    """p [...,2] points, c [5,2] -> [...,8] basis (U(|p-c_i|), 1, px, py)."""
    d2 = ((p[..., None, :] - c) ** 2).sum(-1)
    return np.concatenate([tps_kernel(d2), np.ones(p.shape[:-1] + (1,)), p], -1)


def grid_sample(img, grid, padding="border"):
    """ONNX GridSample (bilinear, align_corners=0). img [N,C,H,W], grid [N,Ho,Wo,2] in -1..1 (x,y)."""
    N, C, H, W = img.shape
    ix = ((grid[..., 0] + 1) * W - 1) / 2
    iy = ((grid[..., 1] + 1) * H - 1) / 2
    x0 = np.floor(ix)
    y0 = np.floor(iy)
    fx = (ix - x0)[:, None]
    fy = (iy - y0)[:, None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    out = np.zeros((N, C) + grid.shape[1:3], np.float64)
    n_idx = np.arange(N)[:, None, None]
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xx, yy = x0 + dx, y0 + dy
            if padding == "border":
                v = img[n_idx, :, np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)]
            else:
                ok = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
                v = img[n_idx, :, np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)] * ok[..., None]
            out += v.transpose(0, 3, 1, 2) * (wx * wy)
    return out


BEND = 0.6  # anonymized values past +-BEND are bent into range (tanh), not cut off; restore unbends
UNBEND_MAX = 0.995
# What restore unbends with when its input went through a lossy codec (JPEG, 4:2:0 video): atanh up
# to this share of the bent range, then on in a straight line with atanh's slope there (5.3).
# atanh's own slope grows without bound towards +-1, so that near the ends a codec's error would be
# multiplied up to a hundredfold; from a lossless input the exact unbend (UNBEND_MAX) restores
# better. The model card's "A restore for lossy inputs" measures both.
LOSSY_UNBEND_KNEE = 0.9

# A restore from a 4:2:0 input (video, JPEG) drops the chroma of the detail the face space misses
# (the detail less its luma) finer than CHROMA_DETAIL_SIGMA canonical pixels (a Gaussian's sigma;
# the canonical face is G x G) where the codec kept too little chroma to bring it back: the
# surrogate keeps that detail at alpha, 4:2:0 throws away what is finer than its chroma samples,
# and restore would scale what is left, mostly the codec's error, up by 1 / alpha. How coarse the
# codec's chroma was, per face, is the chroma pitch: the spacing of its chroma samples in crop
# pixels, 2 x 128 / the face square's side in the frame (0, the default: a lossless input, exact
# restore). At a pitch of CHROMA_PITCH_KEEP or less the detail is kept (a video call's face of
# 700 px: pitch 0.37, where dropping it cost 0.4 dB), from CHROMA_PITCH_DROP on it is dropped
# (faces up to 480 px: pitch 0.53 and more, where it gained 0.35 to 1.5 dB), in between in part.
# The model card's "Chroma detail of lossy inputs" measures it.
CHROMA_PITCH_KEEP = 0.35
CHROMA_PITCH_DROP = 0.6
CHROMA_DETAIL_SIGMA = 2.0
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as 4:2:0 codecs split luma from chroma

# A canonical sample counts as read from inside the frame when the weights it puts on grid samples
# past the frame's edge sum to no more than this (they are 0 or at least a few hundredths).
CUT_EPS = 1e-6
# The largest share of a face's canonical samples past the frame that are fitted around (about
# 30% of the crop cut on one side). Near it the fit is poorly conditioned: at 30% cut (15% of
# the samples) 15 of 16 held-out faces came back better than analysed whole, by 9 dB on
# average, and one 2 dB worse; at 34% cut (23% of them) the worst faces came back worse
# (MODEL_CARD.md, "sdn-0.6.5"). Past it a face is analysed whole, as before.
CUT_LIMIT = 0.16


def chroma_drop(pitch):
    """The share of the fine chroma detail a restore drops at a chroma pitch (CHROMA_PITCH_KEEP)."""
    return np.clip((pitch - CHROMA_PITCH_KEEP) / (CHROMA_PITCH_DROP - CHROMA_PITCH_KEEP), 0.0, 1.0)


def gaussian_taps(sigma):
    """A normalised 1-D Gaussian, cut at 3 sigma."""
    r = int(np.ceil(3 * sigma))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return w / w.sum()


def blur_zero_padded(x, sigma):
    """x [..., H, W] blurred by a Gaussian along both axes, zeros outside (as ONNX Conv pads)."""
    w = gaussian_taps(sigma)
    r = len(w) // 2
    for axis in (-1, -2):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        xp = np.pad(x, pad)
        n = x.shape[axis]
        x = sum(wi * np.take(xp, np.arange(i, i + n), axis=axis) for i, wi in enumerate(w))
    return x


def unbend_slope(knee):
    """The slope of the straight line past the knee: atanh's there, none at UNBEND_MAX and above
    (the exact unbend cuts off there, as it always has)."""
    return np.where(knee < UNBEND_MAX, 1.0 / (1.0 - np.minimum(knee, UNBEND_MAX) ** 2), 0.0)


def bend(y):
    a = np.abs(y)
    return np.where(a > BEND, np.sign(y) * (BEND + (1 - BEND) * np.tanh((a - BEND) / (1 - BEND))), y)


def unbend(v, knee=UNBEND_MAX):
    a = np.abs(v)
    t = np.maximum((a - BEND) / (1 - BEND), 0)
    tk = np.minimum(t, knee)
    u = np.arctanh(tk) + (t - tk) * unbend_slope(knee)
    return np.where(a > BEND, np.sign(v) * (BEND + (1 - BEND) * u), v)


# Grey faces (a camera's infrared night picture, black-and-white footage) go through a face space
# of their own, fitted on luma only (fit.py --split-colour 300,0, facespace_grey.npz): the colour
# face space's rotation mixes chroma in and paints them bluish and greenish. Which of the two a
# face takes is read from its pixels, so that a restore from pixels alone takes the same one: the
# mean absolute chroma of the crop's central half (GREY_BOX), in 8-bit levels. Anonymize takes the
# grey space below GREY_LEVELS. Its surrogate keeps the face's own chroma at most (at alpha inside
# the face), below GREY_LEVELS too; the colour space's surrogate of a face at GREY_LEVELS or more
# has 3.5 levels or more (sdn-0.6.4's model card), so restore takes the grey space below
# GREY_RESTORE_LEVELS, between the two.
GREY_LEVELS = 2.0
GREY_RESTORE_LEVELS = 3.0
GREY_BOX = (32, 96)


def chroma_levels(x):
    """Crops x [N,3,128,128] (-1..1) -> the mean absolute chroma of their central half [N], in
    8-bit levels (a channel's distance from the mean of the three)."""
    a, b = GREY_BOX
    c = np.asarray(x, np.float64)[:, :, a:b, a:b]
    return np.abs(c - c.mean(1, keepdims=True)).mean((1, 2, 3)) * 127.5


def avgpool2(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).mean((3, 5))


class FaceSpace:
    def __init__(self, p):
        self.p = p
        for k, v in p.items():
            setattr(self, k, v)
        self.G = int(self.G)
        self.alpha = float(p.get("alpha", 1.0))
        self.iters = int(self.inv_iters)
        # The graphs store every large matrix in float16: use the same rounded values here.
        r16 = lambda a: np.asarray(a, np.float32).astype(np.float16).astype(np.float64)  # noqa: E731
        self.syn = r16(self.syn)
        self.ana = r16(np.linalg.pinv(self.syn))  # the analysis: pseudo-inverse of the synthesis basis
        # The weight each canonical sample gets in reading a surrogate back (read_back), ana_alpha's
        # and a cut face's fit's alike: 1 where the detail is kept whole.
        self.read_weight = np.ones(len(self.mask))
        a = self.alpha
        if a != 1.0:
            # The anonymized face keeps the original's detail r at D = 1 - (1-a) mask. Its analysis
            # (Ana W Syn)^-1 Ana W reads z' exactly when W D r is a multiple of r (so that Ana
            # ignores it): W = 1/D for a > 0; at a = 0 the limit, W = the mask's core (mask = 1),
            # where D r = 0.
            D = 1 - (1 - a) * self.mask
            W = 1.0 / D if a > 0 else (self.mask >= 1 - 1e-9).astype(np.float64)
            self.read_weight = W
            M = self.ana * W
            self.ana_alpha = r16(np.linalg.solve(M @ self.syn, M))
            # Restore rescales the detail by 1/D, but never by more than 1/DETAIL_FLOOR: where less
            # of it was kept (at a < DETAIL_FLOOR), the codec's noise would grow more than the
            # detail comes back. At a = 0 the core's detail is gone and restore gives the face
            # space's reconstruction there.
            self.detail_gain = 1.0 / np.maximum(D, DETAIL_FLOOR)

    @classmethod
    def load(cls, model_dir, **override):
        path = model_dir if model_dir.endswith(".npz") else os.path.join(model_dir, "facespace.npz")
        z = np.load(path)
        p = {k: z[k] for k in z.files}
        p.update(override)
        return cls(p)

    # ---------- geometry
    def effective(self, lms):
        """The landmarks the warp uses: mean + align * (lms - mean) ([N,5,2])."""
        a = float(self.p.get("align", 1.0))
        m = self.mean_landmarks
        return (m + a * (np.asarray(lms, np.float64) - m)).reshape(-1, 5, 2)

    def coeffs(self, lms):
        """lms [N,10] -> spline coefficients [N,8,2]."""
        return np.einsum("ij,njk->nik", self.tps_minv, self.effective(lms))

    def sample_canonical(self, crops, lms):
        """crops [N,3,128,128] -> masked canonical pixels [N,D] (G x G, 2x2 averaged)."""
        N = len(crops)
        grid = np.einsum("pj,njk->npk", self.tps_T, self.effective(lms))
        g2 = 2 * self.G
        grid = (2 * grid - 1).reshape(N, g2, g2, 2)
        s = avgpool2(grid_sample(crops.astype(np.float64), grid, "border"))
        return s.reshape(N, -1)[:, self.support]

    def inverse_grid(self, lms, S=128):
        """For every crop pixel q its canonical point p with f_l(p) = q: [N,S,S,2] (crop-normalised)."""
        N = len(lms)
        co = self.coeffs(lms)  # [N,8,2]
        t = (np.arange(S) + 0.5) / S
        q = np.stack(np.meshgrid(t, t), -1).reshape(1, -1, 2).repeat(N, 0)
        A = co[:, 6:8, :]  # f = ... + p @ A  (A[n] rows: d/dpx, d/dpy)
        a0 = co[:, 5, :]
        Ainv = np.linalg.inv(A)
        p = np.einsum("npk,nkj->npj", q - a0[:, None], Ainv)
        for _ in range(self.iters):
            f = np.einsum("npj,njk->npk", tps_basis(p, self.mean_landmarks.reshape(5, 2)), co)
            p = p + np.einsum("npk,nkj->npj", q - f, Ainv)
        return p.reshape(N, S, S, 2)

    def to_crop(self, dcanon, lms, S=128):
        """Masked canonical values [N,D] (already tapered by the mask) -> crop [N,3,S,S]."""
        N = len(dcanon)
        full = np.zeros((N, 3 * self.G * self.G))
        full[:, self.support] = dcanon
        full = full.reshape(N, 3, self.G, self.G)
        p = self.inverse_grid(lms, S)
        x0, y0, side = self.window
        g = np.stack([(p[..., 0] - x0) / side, (p[..., 1] - y0) / side], -1) * 2 - 1
        return grid_sample(full, g, "zeros")

    # ---------- coordinates
    def split(self, crops, lms):
        """-> (identity coordinates [N,m], rest). rest holds what merge needs (the crops, their
        landmarks, the whitened coordinates z and the masked canonical pixels v)."""
        crops = np.asarray(crops, np.float64)
        v = self.sample_canonical(crops, lms)
        z = (v - self.mu) @ self.ana.T
        u = z @ self.Q
        return u, {"crops": crops, "landmarks": np.asarray(lms), "z": z, "u": u, "v": v}

    def merge(self, ids, rest, dz_extra=None, detail=1.0):
        """Crops whose identity coordinates are `ids`, everything else as in `rest`; not bent.
        detail < 1 also scales the detail the model misses (inside the mask) by `detail`:
        bend(merge(rotate(u, keys), rest, detail=alpha)) is exactly anonymize() with attributes 0."""
        dz = (ids - rest["u"]) @ self.Q.T
        if dz_extra is not None:
            dz = dz + dz_extra
        d = dz @ self.syn.T
        if detail != 1.0:
            r = (rest["v"] - self.mu) - rest["z"] @ self.syn.T
            d = d - (1 - detail) * self.mask * r
        return rest["crops"] + self.to_crop(d, rest["landmarks"])

    # ---------- faces cut by the frame's edge
    def valid_samples(self, inside, lms):
        """inside [1,1,S,S] (1: the grid sample lies in the frame) for one face -> [1,D] booleans:
        the canonical samples that read only grid samples inside the frame; None where every one
        does, or more than CUT_LIMIT of them do not (the face is then analysed whole)."""
        if inside is None:
            return None
        outside = np.repeat(1.0 - np.asarray(inside, np.float64), 3, axis=1)
        valid = self.sample_canonical(outside, lms) <= CUT_EPS
        return None if valid.all() or 1 - valid.mean() > CUT_LIMIT else valid

    def coordinates(self, vm, ana, valid, weight):
        """Whitened coordinates [N,K] of masked canonical pixels less the mean vm [N,D]: ana's
        analysis, and for each face with samples outside the frame (`valid`, valid_samples()) a fit
        to its valid samples only, argmin_z sum valid * weight * (Syn z - vm)^2 (which is ana's
        result, up to its float16 rounding, where every sample is valid: Ana at weight 1,
        ana_alpha at read_weight)."""
        z = vm @ ana.T
        if valid is not None:
            for n in np.where(~valid.all(axis=1))[0]:
                w = weight * valid[n]
                z[n] = np.linalg.solve(self.syn.T @ (w[:, None] * self.syn), self.syn.T @ (w * vm[n]))
        return z

    # ---------- key
    def rotate(self, u, keys, inverse=False):
        """u [N,m], keys [N,128] +-1 -> R(key) u (or R^T u)."""
        th = np.einsum("lik,nk->nli", self.rot_A, keys) + self.rot_b[None]  # [N,L,m/2]
        c, s = np.cos(th), np.sin(th)
        L = self.rot_O.shape[0]
        u = np.array(u, np.float64)
        order = range(L) if not inverse else reversed(range(L))
        for i in order:
            if not inverse:
                u = u @ self.rot_O[i].T
            e, o = u[:, 0::2].copy(), u[:, 1::2].copy()
            ci, si = c[:, i], (s[:, i] if not inverse else -s[:, i])
            u[:, 0::2] = ci * e - si * o
            u[:, 1::2] = si * e + ci * o
            if inverse:
                u = u @ self.rot_O[i]
        return u

    def turn(self, u, keys, inverse=False, linear=False):
        """The keyed map of the rotated coordinates that anonymize applies (inverse: restore's):
        here the rotation alone, linear either way. `linear`: the map of a change of u, for a
        subclass whose map adds a keyed offset (donor_mix.DonorMix)."""
        return self.rotate(u, keys, inverse)

    def attribute_shift(self, attrs):
        return np.asarray(attrs, np.float64) @ self.attr_dirs  # [N,K]

    # ---------- the map
    def canonical_change(self, v, keys, attrs, linear=False, valid=None):
        """Masked canonical pixels v [N,D] -> the change delta [N,D] that anonymize adds (in the
        canonical frame): Syn (z' - z) - (1 - alpha) mask * r, r the part of v the model misses.
        `valid` (valid_samples()): z fitted to those samples, and r taken off only there."""
        vm = v if linear else v - self.mu
        z = self.coordinates(vm, self.ana, valid, 1.0)
        u = z @ self.Q
        dz = (self.turn(u, keys, linear=linear) - u) @ self.Q.T
        if attrs is not None and not linear:
            dz = dz + self.attribute_shift(attrs)
        d = dz @ self.syn.T
        a = self.alpha
        if a != 1.0:
            r = vm - z @ self.syn.T
            d = d - (1 - a) * self.mask * (r if valid is None else r * valid)
        return d

    def read_back(self, vm, valid=None):
        """A surrogate's masked canonical pixels less the mean, vm [N,D] -> the whitened
        coordinates z2 they read back as and the detail the face space misses in them, unscaled."""
        z2 = self.coordinates(vm, self.ana_alpha if self.alpha != 1.0 else self.ana, valid, self.read_weight)
        return z2, vm - z2 @ self.syn.T

    def fine_chroma(self, v2, valid=None):
        """The chroma of the detail the face space misses in masked canonical pixels v2 [N,D],
        less its part smoother than CHROMA_DETAIL_SIGMA, times the mask: what a restore from a
        lossy input takes off before it inverts ([N,D])."""
        _, r = self.read_back(v2 - self.mu, valid)
        G = self.G
        full = np.zeros((len(v2), 3 * G * G))
        full[:, self.support] = r
        full = full.reshape(-1, 3, G, G)
        chroma = full - np.einsum("c,nchw->nhw", LUMA, full)[:, None]
        fine = chroma - blur_zero_padded(chroma, CHROMA_DETAIL_SIGMA)
        return fine.reshape(len(v2), -1)[:, self.support] * self.mask

    def canonical_undo(self, v2, keys, attrs, linear=False, valid=None):
        """Exact inverse in the canonical frame: v2 = v + canonical_change(v) -> v - v2 ([N,D])."""
        vm = v2 if linear else v2 - self.mu
        z2, r = self.read_back(vm, valid)
        if self.alpha != 1.0:
            r = r * (self.detail_gain if valid is None else 1 + (self.detail_gain - 1) * valid)
        if attrs is not None and not linear:
            z2 = z2 - self.attribute_shift(attrs)
        u2 = z2 @ self.Q
        z = z2 + (self.turn(u2, keys, inverse=True, linear=linear) - u2) @ self.Q.T
        v = z @ self.syn.T + r
        return v - vm

    def anonymize(self, crops, lms, keys, attrs=None, clip=True, linear=False, inside=None, valid=None):
        x = np.asarray(crops, np.float64)
        valid = self.valid_samples(inside, lms) if valid is None else valid
        d = self.canonical_change(self.sample_canonical(x, lms), keys, attrs, linear, valid)
        y = x + self.to_crop(d, lms)
        return bend(y) if clip else y

    def restore(self, y, lms, keys, attrs=None, steps=None, knee=UNBEND_MAX, chroma_pitch=None, inside=None):
        """Inverse of anonymize: the canonical change is undone exactly in the canonical frame
        (canonical_undo) and warped back; the mismatch of sampling and warping back is then
        removed by `steps` corrections x <- x + U(y - F(x)), F the anonymize map (unclipped),
        U the linear part of the first step. For a lossy input: knee LOSSY_UNBEND_KNEE and each
        face's chroma pitch [N] (see CHROMA_PITCH_KEEP: it inverts y less the dropped fine_chroma).
        `inside`: as anonymize's; the corrections then see only the grid inside the frame."""
        steps = int(self.restore_steps) if steps is None else steps
        valid = self.valid_samples(inside, lms)
        y = unbend(np.asarray(y, np.float64), knee)
        if chroma_pitch is not None:
            drop = chroma_drop(np.asarray(chroma_pitch, np.float64)).reshape(-1, 1, 1, 1)
            y = y - drop * self.to_crop(self.fine_chroma(self.sample_canonical(y, lms), valid), lms)
        x = y + self.to_crop(self.canonical_undo(self.sample_canonical(y, lms), keys, attrs, valid=valid), lms)
        for _ in range(steps):
            e = y - self.anonymize(x, lms, keys, attrs, clip=False, valid=valid)
            if valid is not None:
                e = e * inside
            x = x + e + self.to_crop(self.canonical_undo(self.sample_canonical(e, lms), keys, None, linear=True, valid=valid), lms)
        return np.clip(x, -1, 1)


class GreyAndColour:
    """The colour face space and the grey one, each face through the one its colour picks
    (chroma_levels): anonymize and restore as FaceSpace's."""

    def __init__(self, colour, grey):
        self.colour, self.grey = colour, grey
        self.p, self.mean_landmarks = colour.p, colour.mean_landmarks

    @classmethod
    def load(cls, model_dir, grey_npz=None, **override):
        """The folder's facespace.npz with its facespace_grey.npz (or `grey_npz`); the colour face
        space alone (a FaceSpace) where there is no grey one."""
        colour = FaceSpace.load(model_dir, **override)
        folder = os.path.dirname(model_dir) if model_dir.endswith(".npz") else model_dir
        grey_npz = grey_npz or os.path.join(folder, "facespace_grey.npz")
        return cls(colour, FaceSpace.load(grey_npz, **override)) if os.path.exists(grey_npz) else colour

    @staticmethod
    def _each(grey, run_grey, run_colour):
        out = run_colour()
        if grey.any():
            out = np.where(grey[:, None, None, None], run_grey(), out)
        return out

    def anonymize(self, crops, lms, keys, attrs=None, **kw):
        grey = chroma_levels(crops) < GREY_LEVELS
        return self._each(grey, lambda: self.grey.anonymize(crops, lms, keys, attrs, **kw),
                          lambda: self.colour.anonymize(crops, lms, keys, attrs, **kw))

    def restore(self, y, lms, keys, attrs=None, **kw):
        grey = chroma_levels(y) < GREY_RESTORE_LEVELS
        return self._each(grey, lambda: self.grey.restore(y, lms, keys, attrs, **kw),
                          lambda: self.colour.restore(y, lms, keys, attrs, **kw))
