"""Example detail: full-resolution detail for a low-resolution face, patch by patch from a bank of
fitting crops, and a keyed map that puts it on sdn's surrogate while hiding the crop's own detail
under it, so that the key's restore is exact. A candidate for the next model, measured in
MODEL_CARD.md ("Example detail"); nothing here is exported to the graphs yet.

    from example_detail import Bank, KeyedDetail, Split
    bank = Bank.from_data(data_dir, labels, off, low=Split().low)   # 1000 fitting crops
    out, top = bank.detail(low_crops, subsets)                     # detail [n,3,128,128], top donor
    m = KeyedDetail(FaceSpace.load(model_dir), bank, blend_weights) # anonymize / restore, as FaceSpace
    m = KeyedDetail(fs, LearnedDetail("runs/sr/detail.onnx"), blend_weights)  # train_sr.py's detail instead

Example detail (example-based super-resolution: Freeman, Jones and Pasztor 2002; Baker and
Kanade's face hallucination 2000): for each 8 px patch of the crop (stride 4, overlapped with a
squared-sine window that sums to 1), the bank face whose low band's luma around it (12 px, mean
removed) is nearest gives its high band there, scaled to the patch's contrast. Nothing is trained.
Each key may draw its own subset of the bank to search ("keyed"), so that two keys' details
differ where their low bands are alike.

The keyed map. t = sdn's surrogate; its low band L = P t with P = U (D U)^-1 D, D the 4 x 4 means
(128 -> 32) and U cubic upsampling: P is a projector (P P = P) whose output is smooth, and
H = t - L has every 4 x 4 block mean zero. On the 8 px blocks that the blend ellipse covers
wholly (its core), the surrogate is

    s = bend(L + E(L, key) + beta * Shuffle_key(H))

E the keyed example detail less its own low band (so D E = 0), Shuffle_key a permutation of the
core's 8 px blocks; a block permutation keeps 4 x 4 means zero, so D s = D L and restore reads L
back exactly, recomputes E with the key, and unshuffles H (times 1/beta). Off the core
s = bend(t). hide="pixels" shuffles the 16 pixels inside each 4 x 4 block of the core instead of
moving 8 px blocks; it keeps the block means too. A wrong key subtracts another detail and
unshuffles into other places: the original's detail does not come back.
"""
import hashlib

import cv2
import numpy as np

from facespace import LUMA, bend, unbend

PATCH, STRIDE, CONTEXT = 8, 4, 2


def luma(x):
    r, g, b = LUMA.tolist()
    return r * x[:, 0] + g * x[:, 1] + b * x[:, 2]


def gaussian_low(sigma):
    """A Gaussian low band (sigma px of the 128 crop), as eval_ceiling.py's rows use it."""
    def low(x):
        return np.stack([cv2.GaussianBlur(c.transpose(1, 2, 0).astype(np.float32), (0, 0), sigma,
                                          borderType=cv2.BORDER_REFLECT).transpose(2, 0, 1) for c in x])
    return low


class Split:
    """The projector P = U (D U)^-1 D onto smooth 32 x 32 detail, applied per channel."""

    def __init__(self, size=128, factor=4):
        n = size // factor
        d = np.kron(np.eye(n), np.full((1, factor), 1.0 / factor))
        u = np.stack([cv2.resize(np.eye(n, dtype=np.float32)[i][None, :], (size, 1), interpolation=cv2.INTER_CUBIC)[0]
                      for i in range(n)], 1).astype(np.float64)
        self.D = d  # [n,size]: the factor x factor means
        self.M = u @ np.linalg.inv(d @ u)  # [size,n]: P = M D
        self.A = self.M @ d

    def low(self, x):
        return self.A @ x @ self.A.T


class Bank:
    """The high bands of fitting crops and the luma of their low bands, padded for patch reads."""

    def __init__(self, crops, low):
        lo = low(crops)
        self.pad = PATCH + CONTEXT
        self.luma = self.padded(luma(lo)).astype(np.float32)
        self.high = self.padded(crops - lo).astype(np.float32)
        w = np.sin(np.pi * (np.arange(PATCH) + 0.5) / PATCH) ** 2
        self.window = np.outer(w, w).astype(np.float32)

    @classmethod
    def from_data(cls, data, lab, off, low, n=1000, seed=3):
        """n random fitting crops (training identities and UTKFace; none held out) of prepare.py's
        data; also returns their indices into the labels."""
        import quick_judge as qj
        index = np.sort(np.random.RandomState(seed).choice(np.nonzero(lab["split"] == 0)[0], n, replace=False))
        frames = qj.stored_frames(data, lab, index)
        crops = frames[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1
        return cls(crops, low), index, frames

    def __len__(self):
        return len(self.luma)

    def padded(self, a):
        p = self.pad
        return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(p, p), (p, p)], mode="reflect")

    def detail(self, lo, subsets=None):
        """Low bands lo [n,3,128,128] -> (their example detail, the bank face that gave each most
        patches). subsets [n,k]: the bank entries each face may draw from (all if None)."""
        n, P, C = len(lo), PATCH, CONTEXT
        subsets = np.tile(np.arange(len(self)), (n, 1)) if subsets is None else np.asarray(subsets)
        rows = np.arange(n)
        q = self.padded(luma(lo)).astype(np.float32)
        S = 128 + 2 * self.pad
        acc = np.zeros((n, 3, S, S), np.float32)
        votes = np.zeros((n, len(self)), int)
        for y in range(self.pad - P // 2 - STRIDE, S - self.pad + STRIDE, STRIDE):
            for x in range(self.pad - P // 2 - STRIDE, S - self.pad + STRIDE, STRIDE):
                fb = self.luma[:, y - C:y + P + C, x - C:x + P + C].reshape(len(self), -1)
                fb = fb - fb.mean(1, keepdims=True)
                energy = (fb ** 2).sum(1)  # each bank window's, once for every face's search
                fq = q[:, y - C:y + P + C, x - C:x + P + C].reshape(n, -1)
                fq = fq - fq.mean(1, keepdims=True)
                j = subsets[rows, (energy[subsets] - 2 * np.einsum("nd,nsd->ns", fq, fb[subsets])).argmin(1)]
                gain = np.clip(np.sqrt((fq ** 2).mean(1)) / (np.sqrt(energy[j] / fb.shape[1]) + 1e-3), 0.5, 2.0)
                acc[:, :, y:y + P, x:x + P] += self.high[j, :, y:y + P, x:x + P] * self.window * gain[:, None, None, None]
                votes[rows, j] += 1
        p = self.pad
        return acc[:, :, p:p + 128, p:p + 128].astype(np.float64), votes.argmax(1)

    def keyed(self, lo, keys, subset=50):
        """Each key searches its own `subset` faces of the bank."""
        subsets = np.stack([np.random.RandomState(key_seed(k, b"bank")).choice(len(self), subset, replace=False)
                            for k in keys])
        return self.detail(lo, subsets)[0]


class LearnedDetail:
    """Bank.detail's trained twin: train_sr.py's detail.onnx, (low band, keyed noise) -> detail
    with every 4 x 4 mean zero."""

    def __init__(self, path):
        import onnxruntime as ort
        self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def detail(self, lo, noise):
        out = [self.sess.run(["detail"], {"low": lo[b:b + 32].astype(np.float32), "noise": noise[b:b + 32]})[0]
               for b in range(0, len(lo), 32)]
        return np.concatenate(out).astype(np.float64)

    def keyed(self, lo, keys):
        noise = np.stack([np.random.RandomState(key_seed(k, b"noise")).randn(4, 32, 32) for k in keys])
        return self.detail(lo, noise.astype(np.float32))


def key_seed(key, tag):
    """A seed from a key vector (its signs) and a purpose."""
    return int.from_bytes(hashlib.sha256(tag + np.asarray(key > 0).tobytes()).digest()[:4], "little")


class KeyedDetail:
    """sdn's surrogate with keyed example detail and its own detail shuffled under it (module
    docstring); anonymize and restore as FaceSpace's."""

    def __init__(self, fs, source, core_weight, beta=0.25, hide="blocks"):
        self.fs, self.source, self.beta = fs, source, beta
        self.hide = hide
        self.split = Split()
        blocks = core_weight.reshape(16, 8, 16, 8).min((1, 3)).ravel() >= 0.999
        self.core = np.nonzero(blocks)[0]
        self.cmask = np.kron(blocks.reshape(16, 16).astype(np.float64), np.ones((8, 8)))
        self.core_quads = np.kron(blocks.reshape(16, 16), np.ones((2, 2), bool)).ravel()  # the core's 4 x 4 blocks

    def order(self, key):
        p = np.arange(256)
        p[self.core] = self.core[np.random.RandomState(key_seed(key, b"perm")).permutation(len(self.core))]
        return p

    def shuffle(self, h, keys, inverse=False):
        if self.hide == "pixels":
            return self.shuffle_pixels(h, keys, inverse)
        n = len(h)
        b = h.reshape(n, 3, 16, 8, 16, 8).transpose(0, 2, 4, 1, 3, 5).reshape(n, 256, 3, 8, 8)
        out = np.empty_like(b)
        for i, k in enumerate(keys):
            if inverse:
                out[i][self.order(k)] = b[i]
            else:
                out[i] = b[i][self.order(k)]
        return out.reshape(n, 16, 16, 3, 8, 8).transpose(0, 3, 1, 4, 2, 5).reshape(n, 3, 128, 128)

    def shuffle_pixels(self, h, keys, inverse=False):
        """The 16 pixels of every 4 x 4 block of the core permuted by the key: a block's mean stays
        (zero), and the hidden band is grain where it sits rather than blocks from elsewhere."""
        n = len(h)
        b = h.reshape(n, 3, 32, 4, 32, 4).transpose(0, 2, 4, 1, 3, 5).reshape(n, 1024, 3, 16)
        core = self.core_quads
        out = b.copy()
        for i, k in enumerate(keys):
            order = np.random.RandomState(key_seed(k, b"pixels")).rand(int(core.sum()), 16).argsort(1)
            if inverse:
                order = order.argsort(1)
            out[i, core] = np.take_along_axis(b[i, core], order[:, None, :], 2)
        return out.reshape(n, 32, 32, 3, 4, 4).transpose(0, 3, 1, 4, 2, 5).reshape(n, 3, 128, 128)

    def example(self, lo, keys):
        e = self.source.keyed(lo, keys)
        return e - self.split.low(e)

    def anonymize(self, crops, lms, keys):
        t = self.fs.anonymize(crops.astype(np.float64), lms, keys)
        lo = self.split.low(t)
        h = t - lo
        c = self.cmask
        return bend(lo + c * (self.example(lo, keys) + self.beta * self.shuffle(h, keys)) + (1 - c) * h)

    def restore(self, y, lms, keys):
        y = unbend(np.clip(y.astype(np.float64), -0.999, 0.999))
        lo = self.split.low(y)
        r = y - lo
        c = self.cmask
        h = self.shuffle(c * (r - self.example(lo, keys)) / self.beta, keys, inverse=True) + (1 - c) * r
        return self.fs.restore(lo + h, lms, keys)
