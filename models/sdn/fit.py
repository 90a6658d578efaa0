"""Fit: the sdn-0.6.x face space from models/sdn/data (written by prepare.py) -> models/sdn/facespace.npz.

    OMP_NUM_THREADS=2 deps/sdn-venv/bin/python models/sdn/fit.py [--K 300] [--m 296] [--alpha 0.25] [--keep tone,age]
        [--bands 8,24,64,128 --fixed 4]   (--bands '': sdn-0.6.2's LDA subspace, mixed whole)
        [--rotate-all --keep tone,age,pose,frame,light,expr]

Only the fitting split (split == 0) is used; no dlib, no network. Steps (facespace.py documents the
model):
 1. mean landmarks over the fitting crops -> canonical control points; the canonical window and
    the face mask (an ellipse through brows, cheeks and chin, feathered) placed from them;
 2. every crop warped to the canonical frame by the thin-plate spline through its CenterFace
    landmarks, G x G (2x2 averaged from 2G x 2G), masked pixels kept;
 3. PCA of all fitting crops (CelebA and UTKFace), K components; the synthesis basis tapered by the
    mask; analysis = its pseudo-inverse; coordinates whitened;
 4. rotated subspace: every whitened direction but the kept-out ones and the --fixed largest (292
    of the 300), in the face space's own order, and mixed only within bands of like variance
    (--bands: components 4-7, 8-23, 24-63, 64-127 and the rest), so that a frame-to-frame change
    of the face keeps its size in pixels (the flicker of "sdn-0.6.3" in the model card); kept out
    of it (--keep): the skin-tone directions (regression of the face's mean Lab colour on z) and
    the age direction (regression of UTKFace's age on z), so that the key does not move them,
    and, tried and not shipped, pose, framing, light and expression directions. With --bands ''
    (sdn-0.6.2): the principal directions of the CelebA identities' class means in the whitened
    space (LDA, since the whitened total scatter is I), mixed whole; --rotate-all takes every
    direction but the kept ones instead of the LDA ones;
 5. attribute directions: one degree = the difference of the class means of z over the images
    labelled +1 and -1 (CelebA labels; male/young also from UTKFace's file names);
 6. key -> rotation: L fixed random orthogonal matrices (block-diagonal over the bands) and angle
    maps (seeded).
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
from facespace import tps_basis, tps_solve_matrix  # noqa: E402


def load_data(data):
    lab = np.load(os.path.join(data, "labels.npz"))
    lab = {k: lab[k] for k in lab.files}
    shards = {}
    for s in np.unique(lab["shard"]):
        shards[s] = np.load(os.path.join(data, f"shard_{s:03d}.npy"), mmap_mode="r")
    return lab, shards


def layout(mean_lm, G, scale=1.0, feather=0.25):
    c = mean_lm.reshape(5, 2)
    eye_d = c[1, 0] - c[0, 0]
    eye_y = (c[0, 1] + c[1, 1]) / 2
    mouth_y = (c[3, 1] + c[4, 1]) / 2
    cx = c[:, 0].mean()
    top, bottom = eye_y - 0.62 * eye_d, mouth_y + 0.62 * eye_d
    cy = (top + bottom) / 2
    ay = (bottom - top) / 2 * scale
    ax = 1.0 * eye_d * scale
    side = 2 * max(ax, ay) * 1.04
    window = np.array([cx - side / 2, cy - side / 2, side])
    ell = (cx, cy, ax, ay)
    return window, ellipse_mask(window, G, ell, 1.0, feather), ell


def ellipse_mask(window, G, ell, scale, feather):
    """The mask's ellipse `ell` (cx, cy, ax, ay) with its axes scaled by `scale`, feathered alike,
    on the canonical window's G x G grid."""
    cx, cy, ax, ay = ell
    t = window[:2, None] + (np.arange(G) + 0.5)[None] * window[2] / G
    X, Y = np.meshgrid(t[0], t[1])
    r = np.sqrt(((X - cx) / (ax * scale)) ** 2 + ((Y - cy) / (ay * scale)) ** 2)
    tt = np.clip((1 - r) / feather, 0, 1)
    return tt * tt * (3 - 2 * tt)


def canonical_points(window, G2):
    t = (np.arange(G2) + 0.5) / G2
    u = window[0] + t * window[2]
    v = window[1] + t * window[2]
    X, Y = np.meshgrid(u, v)
    return np.stack([X, Y], -1).reshape(-1, 2)


def warp_all(lab, shards, tps_T, G, idx, store):
    """Canonical G x G faces (RGB -1..1, [n,3,G,G] float32) of the crops idx."""
    G2 = 2 * G
    off = (store - 128) / 2
    out = np.empty((len(idx), 3, G, G), np.float32)
    for j, i in enumerate(idx):
        img = shards[lab["shard"][i]][lab["index"][i]]
        g = tps_T @ lab["landmarks"][i].reshape(5, 2).astype(np.float64)  # crop-normalised
        mx = (off + g[:, 0] * 128 - 0.5).reshape(G2, G2).astype(np.float32)
        my = (off + g[:, 1] * 128 - 0.5).reshape(G2, G2).astype(np.float32)
        w = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        w = w.reshape(G, 2, G, 2, 3).mean((1, 3))
        out[j] = w.transpose(2, 0, 1) / 127.5 - 1
    return out


def randomized_pca(X, k, iters=3, seed=0):
    rng = np.random.RandomState(seed)
    Y = X @ rng.randn(X.shape[1], k + 20).astype(np.float32)
    for _ in range(iters):
        Y, _ = np.linalg.qr(Y)
        Y = X @ (X.T @ Y)
    Qy, _ = np.linalg.qr(Y)
    B = Qy.T @ X
    _, s, Vt = np.linalg.svd(B, full_matrices=False)
    return s[:k] / np.sqrt(len(X) - 1), Vt[:k]


def split_pca(X, k_luma, k_chroma):
    """A face space in two parts over masked canonical pixels X [n, 3P] (RGB planes): the grey
    part (R = G = B), PCA of the centred mean of the channels, and the chroma part (each pixel's
    channels summing to zero), PCA about zero. -> the grey mean face [3P] and the basis
    [k_luma + k_chroma, 3P], its rows orthonormal, grey rows first."""
    n = len(X)
    Xr = X.reshape(n, 3, -1)
    O = np.array([[1, 1, 1] / np.sqrt(3), [1, -1, 0] / np.sqrt(2), [1, 1, -2] / np.sqrt(6)], np.float32)
    Xo = np.einsum("ck,nkp->ncp", O, Xr)
    lum = Xo[:, 0]
    lum_mean = lum.mean(0)
    _, Pl = randomized_pca(lum - lum_mean, k_luma)
    rows_l = np.einsum("c,kp->kcp", O[0], Pl).reshape(k_luma, -1)
    mu = np.einsum("c,p->cp", O[0], lum_mean).reshape(-1)
    if not k_chroma:  # a grey face space: the chroma part is empty
        return mu, rows_l.astype(np.float32)
    _, Pc = randomized_pca(np.ascontiguousarray(Xo[:, 1:].reshape(n, -1)), k_chroma)
    Pc = Pc.reshape(k_chroma, 2, lum.shape[1])
    rows_c = (np.einsum("c,kp->kcp", O[1], Pc[:, 0]) + np.einsum("c,kp->kcp", O[2], Pc[:, 1])).reshape(k_chroma, -1)
    return mu, np.concatenate([rows_l, rows_c]).astype(np.float32)


def lab_ab(rgb01):
    """[n,3,...] RGB 0..1 -> mean L, a, b (cv2's float Lab) per image."""
    img = np.ascontiguousarray(rgb01.transpose(0, 2, 3, 1)).astype(np.float32)
    return np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0) for im in img])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "facespace.npz"))
    ap.add_argument("--G", type=int, default=64)
    ap.add_argument("--K", type=int, default=300)
    ap.add_argument("--m", type=int, default=296, help="identity coordinates rotated (all K but the kept ones: K - 4)")
    ap.add_argument("--align", type=float, default=0.0, help="alignment strength the graphs apply at run time "
                    "(1: warp by the face's own landmarks; 0: the mean shape, landmarks ignored; fitting always aligns)")
    ap.add_argument("--alpha", type=float, default=0.25, help="amplitude of the original's detail the model misses, kept inside the mask")
    ap.add_argument("--keep", default="tone,age", help="comma list of tone,age,pose,frame,light,expr kept out of the identity subspace")
    ap.add_argument("--rotate-all", action="store_true", help="rotate every direction of the face space but the kept ones (not only the LDA identity subspace)")
    ap.add_argument("--bands", default="8,24,64,128", help="rotate every direction but the kept ones, each only "
                    "among directions of like variance: comma list of band edges over the face space's components, "
                    "largest first (empty: the LDA subspace mixed whole, as sdn-0.6.2)")
    ap.add_argument("--fixed", type=int, default=4, help="with --bands: the first n components (the largest) are "
                    "not rotated: they hold most of an overexposed face's excess, which a rotation pushes past the 8-bit range")
    ap.add_argument("--no-align", action="store_true", help="fit on the crops as framed (every face given the mean landmarks)")
    ap.add_argument("--mask-scale", type=float, default=1.15, help="face mask ellipse axes scaled by this")
    ap.add_argument("--feather", type=float, default=0.25, help="the mask's rim (share of the radius)")
    ap.add_argument("--chroma-scale", type=float, default=1.0, help="the ellipse that tapers the basis' chroma, "
                    "scaled by this against the mask's (below 1: the change's colour kept off the rim)")
    ap.add_argument("--lda-dims", type=int, default=0, help="LDA inside the first n whitened dims only (0: all K)")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--tps-lambda", type=float, default=0.0)
    ap.add_argument("--inv-iters", type=int, default=4)
    ap.add_argument("--restore-steps", type=int, default=3)
    ap.add_argument("--split-colour", default="", help="LUMA,CHROMA: fit the face space as a grey (luma) part of LUMA "
                    "components and an uncentred chroma part of CHROMA, the rotation turning coordinates only within each "
                    "part, so that a grey face gets a grey surrogate (e.g. 240,60; K is their sum); CHROMA 0 fits a grey face "
                    "space, which models a face's luma only (its chroma is then detail, kept at --alpha)")
    ap.add_argument("--chroma-bands", default="8,24", help="with --split-colour: band edges within the chroma part's "
                    "rotated directions")
    ap.add_argument("--cache", default=None, help="canonical faces cached here (default runs/canon_cache[_noalign].npz)")
    args = ap.parse_args()
    args.cache = args.cache or os.path.join(HERE, "runs", "canon_cache" + ("_noalign" if args.no_align else "") + f"_{args.mask_scale}.npz")
    t0 = time.time()
    lab, shards = load_data(args.data)
    store = int(lab["store"])
    fit = np.nonzero(lab["split"] == 0)[0]
    mean_lm = lab["landmarks"][fit].astype(np.float64).mean(0)
    if args.no_align:
        lab["landmarks"] = np.tile(mean_lm.astype(np.float32), (len(lab["landmarks"]), 1))
    G = args.G
    window, mask, ell = layout(mean_lm, G, args.mask_scale, args.feather)
    c = mean_lm.reshape(5, 2)
    minv = tps_solve_matrix(c, args.tps_lambda)
    pts = canonical_points(window, 2 * G)
    tps_T = tps_basis(pts, c) @ minv  # [4G^2, 5]
    support3 = np.tile((mask > 1e-3).reshape(-1), 3)
    support = np.nonzero(support3)[0]
    mvec = np.tile(mask.reshape(-1), 3)[support]
    chroma_mask = ellipse_mask(window, G, ell, args.chroma_scale, args.feather)
    cvec = np.tile(chroma_mask.reshape(-1), 3)[support]
    key = f"{G}_{args.tps_lambda}_{len(fit)}_{np.round(window, 5).tolist()}_{args.no_align}_{args.mask_scale}"
    if os.path.exists(args.cache) and str(np.load(args.cache)["key"]) == key:
        Xc = np.load(args.cache)["X"]
    else:
        Xc = warp_all(lab, shards, tps_T, G, fit, store)
        os.makedirs(os.path.dirname(args.cache), exist_ok=True)
        np.savez(args.cache, X=Xc, key=key)
    print(f"warped {len(fit)} fitting crops to {G}x{G} canonical, D={len(support)} ({time.time() - t0:.0f}s)", flush=True)
    X = Xc.reshape(len(fit), -1)[:, support]
    split = [int(k) for k in args.split_colour.split(",")] if args.split_colour else None
    if split:
        args.K = sum(split)
        mu, P = split_pca(X, *split)
    else:
        mu = X.mean(0)
        _, P = randomized_pca(X - mu, args.K)
    Xm = X - mu
    var_total = (Xm.astype(np.float64) ** 2).sum() / (len(X) - 1)
    explained = float(((Xm @ P.T.astype(np.float32)).astype(np.float64) ** 2).sum() / (len(X) - 1) / var_total)
    print(f"PCA K={args.K}: {explained * 100:.1f}% of the variance ({time.time() - t0:.0f}s)", flush=True)
    # The basis tapered by the mask; its chroma (each pixel's channels less their mean) by the
    # chroma mask, which --chroma-scale below 1 draws tighter, so that the change's colour stays
    # inside the face and the rim (hair, ears, outline) keeps the original's.
    P3 = P.reshape(len(P), 3, -1).astype(np.float64)
    grey = P3.mean(1, keepdims=True)
    B0 = (grey * mvec[: P3.shape[2]] + (P3 - grey) * cvec[: P3.shape[2]]).reshape(len(P), -1).T  # [D,K]
    pinv0 = np.linalg.pinv(B0)  # [K,D]
    C0 = Xm @ pinv0.T.astype(np.float32)
    # Whitened within each part: the chroma part about zero (a grey face's chroma), so that a
    # grey face's chroma coordinates are zero and no rotation of them gives it colour.
    blocks = [(0, split[0], True), (split[0], args.K, False)] if split else [(0, args.K, True)]
    blocks = [(a, b, centred) for a, b, centred in blocks if b > a]
    W = np.zeros((args.K, args.K))
    for a, b, centred in blocks:
        Cb = C0[:, a:b].astype(np.float64)
        lam, V = np.linalg.eigh(np.cov(Cb.T) if centred else Cb.T @ Cb / (len(Cb) - 1))
        W[a:b, a:b] = V[:, ::-1] * np.sqrt(lam[::-1])
    syn = B0 @ W  # [D,K]
    Z = C0 @ np.linalg.inv(W).T.astype(np.float32)  # whitened coords of the fitting crops
    print(f"tapered basis: condition {np.linalg.cond(B0):.1f}; z std {Z.std(0).mean():.3f}", flush=True)

    # identity subspace
    ident = lab["identity"][fit]
    cel = ident >= 0
    ids = np.unique(ident[cel])
    means = np.stack([Z[ident == i].mean(0) for i in ids]).astype(np.float64)
    counts = np.array([(ident == i).sum() for i in ids])
    Mb = (means - Z[cel].mean(0)) * np.sqrt(counts)[:, None]
    Sb = Mb.T @ Mb / counts.sum()
    # directions kept out of the identity subspace
    keep = [k for k in args.keep.split(",") if k]
    kept = []
    rgb = (Xc[:: max(1, len(Xc) // 6000)] + 1) / 2
    sub = np.arange(len(Xc))[:: max(1, len(Xc) // 6000)]
    mk = (mask > 0.5)
    colour = lab_ab(rgb * mk[None, None])  # mean over the face mask region (zeros outside scale it)
    colour = colour / mk.mean()
    # With a split face space each kept direction lies in one part: lightness and age in the
    # grey one, a* and b* in the chroma one.
    def part(where):  # the coordinates of the "luma" or the "chroma" part (all of them unsplit)
        if not split:
            return slice(0, args.K)
        return slice(0, split[0]) if where == "luma" else slice(split[0], args.K)

    def regress(Zs, y, where):
        w = np.zeros(args.K)
        w[part(where)] = np.linalg.lstsq(Zs[:, part(where)].astype(np.float64), y, rcond=None)[0]
        return w
    if "tone" in keep:
        for ch in range(3 if not split or split[1] else 1):  # a* and b* only where there is chroma
            kept.append(regress(Z[sub], colour[:, ch] - colour[:, ch].mean(), "luma" if ch == 0 else "chroma"))
    if "age" in keep:
        utk = np.nonzero(lab["source"][fit] == "utkface")[0]
        age = np.array([int(os.path.basename(f).split("_")[0]) for f in lab["files"][fit][utk]], np.float64)
        kept.append(regress(Z[utk], age - age.mean(), "luma"))
    if split and split[1]:
        # The chroma part is not centred: its mean (the faces' common colour) is kept, so that
        # the rotation turns only how a face's colour differs from it.
        w = np.zeros(args.K)
        w[part("chroma")] = Z[:, part("chroma")].mean(0)
        kept.append(w)
    if "pose" in keep or "frame" in keep:  # from the fitting crops' CenterFace landmarks
        lm = lab["landmarks"][fit].astype(np.float64).reshape(-1, 5, 2)
        le, re, nose, ml, mr = (lm[:, i] for i in range(5))
        eye_c, mouth_c = (le + re) / 2, (ml + mr) / 2
        eye_d = np.linalg.norm(re - le, axis=1)
    if "pose" in keep:  # how the head is turned (yaw, pitch, roll), which changes along a track
        feats = [(nose[:, 0] - eye_c[:, 0]) / eye_d,
                 (nose[:, 1] - eye_c[:, 1]) / (mouth_c[:, 1] - eye_c[:, 1] + 1e-6),
                 np.arctan2(re[:, 1] - le[:, 1], re[:, 0] - le[:, 0])]
        for f in feats:
            kept.append(np.linalg.lstsq(Z.astype(np.float64), f - f.mean(), rcond=None)[0])
    if "frame" in keep:  # where the face sits in the crop and how large: the detector's framing
        for f in [lm[:, :, 0].mean(1), lm[:, :, 1].mean(1), np.log(eye_d)]:
            kept.append(np.linalg.lstsq(Z.astype(np.float64), f - f.mean(), rcond=None)[0])
    if "light" in keep:  # the light's direction: left against right, top against bottom of the face
        lum = rgb.mean(1) * mk[None]
        h = lum.shape[1] // 2
        for f in [lum[:, :, :h].sum((1, 2)) - lum[:, :, h:].sum((1, 2)), lum[:, :h].sum((1, 2)) - lum[:, h:].sum((1, 2))]:
            kept.append(np.linalg.lstsq(Z[sub].astype(np.float64), f - f.mean(), rcond=None)[0])
    if "expr" in keep:  # smiling and mouth open (CelebA labels): expression, which changes along a track
        at = lab["attrs"][fit]
        cel_src = lab["source"][fit] == "celeba"
        for a in (0, 1):
            kept.append(Z[(at[:, a] > 0) & cel_src].mean(0) - Z[(at[:, a] < 0) & cel_src].mean(0))
    Kd = np.linalg.qr(np.stack(kept, 1))[0] if kept else np.zeros((args.K, 0))
    ev = None  # the LDA directions' Fisher ratios, where they are the rotated ones
    if split:
        # Each part on its own, in its components' order, less its kept directions; the grey
        # part's first `fixed` components are not turned.
        Qs = []
        for a, b, fixed in [(0, split[0], args.fixed)] + ([(split[0], args.K, 0)] if split[1] else []):
            Ki = np.stack([k for k in kept if np.abs(k[a:b]).sum() > 0], 1) if kept else np.zeros((args.K, 0))
            Ki = np.linalg.qr(Ki)[0] if Ki.shape[1] else Ki
            I = np.eye(args.K)[:, a:b]
            Qi = np.linalg.qr(np.concatenate([Ki, I], 1))[0][:, Ki.shape[1] + fixed:][:, : b - a - Ki.shape[1] - fixed]
            Qs.append(Qi[:, : Qi.shape[1] - Qi.shape[1] % 2])
        Q = np.concatenate(Qs, 1)
        part_edge = Qs[0].shape[1]
    elif args.bands:
        # In the face space's own order: direction j is component j less the kept directions and the
        # components before it, so a band of directions keeps its components' variance.
        Q = np.linalg.qr(np.concatenate([Kd, np.eye(args.K)], 1))[0][:, Kd.shape[1] + args.fixed:]
    else:
        if args.rotate_all:  # every direction but the kept ones
            Vl = np.eye(args.K)
        else:  # the LDA directions: Sb v = l Sw v (Sw regularised), inside the first nl whitened dims
            Zc = Z[cel].astype(np.float64) - means[np.searchsorted(ids, ident[cel])]
            Sw = Zc.T @ Zc / counts.sum()
            nl = args.lda_dims or args.K
            Wi = np.linalg.inv(np.linalg.cholesky(Sw[:nl, :nl] + 1e-3 * np.eye(nl)))
            ev, U = np.linalg.eigh(Wi @ Sb[:nl, :nl] @ Wi.T)
            ev, U = ev[::-1], U[:, ::-1]
            Vl = np.zeros((args.K, args.m))
            Vl[:nl] = Wi.T @ U[:, : args.m]
        Vl = Vl - Kd @ (Kd.T @ Vl)
        if args.rotate_all:
            Uv, sv, _ = np.linalg.svd(Vl, full_matrices=False)
            Vl = Uv[:, sv > 0.5]
        Q, _ = np.linalg.qr(Vl)
    m = Q.shape[1] - Q.shape[1] % 2
    Q = Q[:, :m]
    idvar = float(np.trace(Q.T @ Sb @ Q) / np.trace(Sb))
    fisher = "" if ev is None else f"; fisher ratio {ev[0]:.2f}..{ev[min(m, len(ev)) - 1]:.3f}"
    print(f"identity subspace m={m}: {idvar * 100:.1f}% of the between-identity scatter{fisher}; "
          f"kept out: {keep} ({time.time() - t0:.0f}s)", flush=True)

    # attribute directions
    attrs = lab["attrs"][fit]
    dirs = np.zeros((6, args.K))
    nlab = []
    for a in range(6):
        pos, neg = attrs[:, a] > 0, attrs[:, a] < 0
        if a < 4:  # smiling, mouth open, mustache, eyeglasses: CelebA labels only
            pos &= lab["source"][fit] == "celeba"
            neg &= lab["source"][fit] == "celeba"
        dirs[a] = Z[pos].mean(0) - Z[neg].mean(0)
        nlab.append((int(pos.sum()), int(neg.sum())))

    rng = np.random.RandomState(11)
    L = args.layers
    edges = [0] + [int(e) - args.fixed for e in args.bands.split(",") if e and int(e) > args.fixed] + [m]
    if split and split[1]:  # the grey part's bands, then the chroma part's: no pair crosses parts
        chroma_edges = [part_edge + int(e) for e in args.chroma_bands.split(",") if e and part_edge + int(e) < m - 2]
        edges = [e for e in edges[:-1] if e < part_edge - 2] + [part_edge] + chroma_edges + [m]
    assert all(e % 2 == 0 for e in edges), "band edges must be even: the angle layers turn pairs"

    def mixing():  # block-diagonal over the bands (one block of m without them)
        O = np.zeros((m, m))
        for a, b in zip(edges[:-1], edges[1:]):
            O[a:b, a:b] = np.linalg.qr(rng.randn(b - a, b - a))[0]
        return O
    rot_O = np.stack([mixing() for _ in range(L)])
    rot_A = rng.randn(L, m // 2, 128)
    rot_b = rng.uniform(0, 2 * np.pi, (L, m // 2))
    out = dict(G=np.array(G), window=window, mask=mvec, support=support, tps_T=tps_T, tps_minv=minv,
               mean_landmarks=mean_lm, mu=mu.astype(np.float64), syn=syn.astype(np.float32),
               Q=Q, attr_dirs=dirs, rot_O=rot_O, rot_A=rot_A, rot_b=rot_b,
               alpha=np.array(args.alpha), align=np.array(args.align), inv_iters=np.array(args.inv_iters), restore_steps=np.array(args.restore_steps),
               info=np.array(json.dumps(dict(K=args.K, m=m, G=G, explained=explained, identity_scatter=idvar,
                                             keep=keep, layers=L, alpha=args.alpha, align=args.align, mask_scale=args.mask_scale, feather=args.feather, fit_images=int(len(fit)),
                                             fit_identities=int(len(ids)), attribute_labels=nlab,
                                             tps_lambda=args.tps_lambda, ellipse=list(map(float, ell)),
                                             seconds=round(time.time() - t0, 1)))))
    np.savez(args.out, **out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MiB) in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
