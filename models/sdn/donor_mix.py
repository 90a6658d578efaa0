"""Donor mix: the key picks a real person, and the surrogate's rotated coordinates are mostly
theirs. A lead measured in MODEL_CARD.md ("Donor mix"); nothing here is exported to the graphs.

    from donor_mix import DonorMix
    m = DonorMix(FaceSpace.load(model_dir).p, bank_crops, bank_landmarks, eps=0.25)
    y = m.anonymize(crops, landmarks, keys); x = m.restore(y, landmarks, keys, steps=12)

sdn-0.6.3 turns the rotated coordinates u by R(key): two keys give two turns of one face, alike
in everything the rotation keeps. Here they are

    u' = c d(key) + eps R(key) u,    c = sqrt(1 - eps^2)

d(key) the same coordinates of a bank face (the fitting crops; none held out) that the key picks,
so that the surrogate is mostly a real other person while the key still turns the original under
it; c keeps the coordinates' expected norm. Restore is exact: u = R(key)^T (u' - c d(key)) / eps.
It multiplies the low band's errors by 1 / eps, so that its correcting steps converge more
slowly (12 instead of 3 for eps = 0.25) and a codec's errors come back larger. The
unrotated coordinates (skin tone, age, the four largest) and the detail kept at alpha stay the
original's. Everything else is FaceSpace's (this class overrides its `turn`).
"""
import numpy as np

from example_detail import key_seed
from facespace import FaceSpace


class DonorMix(FaceSpace):
    def __init__(self, p, bank_crops, bank_landmarks, eps):
        super().__init__(p)
        self.donors = self.split(bank_crops, bank_landmarks)[0]
        self.eps = float(eps)
        self.c = float(np.sqrt(1 - self.eps ** 2))

    def donor(self, keys):
        """The bank face each key vector picks ([N,m])."""
        return self.donors[[key_seed(k, b"donor") % len(self.donors) for k in np.asarray(keys)]]

    def turn(self, u, keys, inverse=False, linear=False):
        """u -> c d(key) + eps R(key) u, or its inverse; `linear`: without the donor (a change)."""
        d = 0 if linear else self.c * self.donor(keys)
        if not inverse:
            return d + self.eps * self.rotate(u, keys)
        return self.rotate((u - d) / self.eps, keys, inverse=True)

    def restore(self, y, lms, keys, attrs=None, steps=12, **kw):
        return super().restore(y, lms, keys, attrs, steps=steps, **kw)
