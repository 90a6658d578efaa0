"""Export: models/sdn/facespace.npz (written by fit.py) -> the two ONNX graphs and sdn.json.

    OMP_NUM_THREADS=2 deps/sdn-venv/bin/python models/sdn/export.py [--alpha 0.25] [--check 16]
        [--compare DIR_WITH_EARLIER_GRAPHS]

Builds, with onnx.helper (opset 17), the computation facespace.py documents:
  sdn.onnx          anonymize: image [N,3,128,128] (-1..1), key [N,128] (+-1), attributes [N,6],
                    landmarks [N,10] (optional: an initializer of the same name holds the mean
                    landmarks [1,10], expanded to N) -> image_out [N,3,128,128]
  sdn_restore.onnx  restore: the same inputs, the anonymized crop as image -> the original crop
Both take `inside` [N,1,128,128] as well (optional: an initializer of ones [1,1,128,128]): 1 where
a grid sample lies in the frame. A batch of one face some of whose grid lies past the frame's
edge runs the cut path (facespace.py's `inside`: the face's coordinates fitted to the canonical
samples inside the frame, the fit's normal matrix inverted in double precision); the restore does
so only while its scalar input `mask_cuts` is 1 (its default; sdn.json's earlier_maps give 0 for
streams of models before it).
then checks both with onnxruntime against facespace.py on held-out crops (with and without the
landmarks input), times them at batch 1, 2 and 8, counts the FLOPs of the nodes, and writes sdn.json
(model entries, sha256). With align = 0 (the shipped fit) both canonical grids are constant and
axis-aligned: each resampling (GridSample, and the 2 x 2 average) is stored as two small matrices,
one for the rows and one for the columns, which onnxruntime multiplies several times faster than
GridSample gathers (the same values, to float rounding).
"""
import argparse
import hashlib
import json
import os
import sys
import time

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from facespace import (CHROMA_DETAIL_SIGMA, CHROMA_PITCH_DROP, CHROMA_PITCH_KEEP, CUT_EPS, CUT_LIMIT, GREY_BOX, GREY_LEVELS,  # noqa: E402
                       GREY_RESTORE_LEVELS, LOSSY_UNBEND_KNEE, LUMA, FaceSpace, GreyAndColour, gaussian_taps)

MODEL_ID = "sdn-0.6.5"  # 0.6.4's map (0.6.3's colour face space and a grey one for grey faces), and faces cut by the frame's edge fitted to the samples inside it
S = 128
# Largest difference (of -1..1 pixel values) from an earlier graph that still counts as the same
# map: float rounding, far below one 8-bit level (0.0078).
SAME_MAP_TOLERANCE = 1e-4
# The restore graph's overridable scalars for a lossy input (facespace.restore's knee).
LOSSY_RESTORE = {"unbend_knee": LOSSY_UNBEND_KNEE}
# The restore graph's scalar input: below how many levels of chroma (facespace.chroma_levels) a face
# restores with the grey face space.
GREY_RESTORE_INPUT = "grey_restore_levels"
# What the restore graph takes for a stream of a model without a grey face space (sdn-0.6.3).
EARLIER_RESTORE = {GREY_RESTORE_INPUT: 0.0}
# The grid samples inside the frame, per face, and the restore's scalar that says whether the
# stream's anonymize fitted cut faces to them (1) or not (0: models before sdn-0.6.5).
CUT_INPUT = "inside"
CUT_RESTORE_INPUT = "mask_cuts"
BEFORE_CUTS_RESTORE = {CUT_RESTORE_INPUT: 0.0}
BEFORE_CUTS_MODEL = "sdn-0.6.4"


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0
        self.graph_nodes = self.nodes  # the main graph's, where self.nodes is a branch's (branch())
        self.consts = {}
        self.flops = 0

    def branch(self, make):
        """The nodes that make() adds, apart, as an If's branch (a subgraph without inputs that
        reads the main graph's values): the subgraph, with make()'s result as its output."""
        main, self.nodes = self.nodes, []
        out = make()
        nodes, self.nodes = self.nodes, main
        nodes.append(helper.make_node("Identity", [out], [out + "_out"]))
        return helper.make_graph(nodes, self.name("branch"), [], [helper.make_tensor_value_info(out + "_out", TensorProto.FLOAT, None)])

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, a, dtype=np.float32, name=None, f16=False):
        """An initializer (one per distinct value); with f16 stored as float16 and cast to float32
        in the graph (the synthesis and analysis matrices: facespace.py rounds them the same way)."""
        a = np.asarray(a, dtype)
        h = hashlib.sha1(a.tobytes() + str(a.shape).encode() + str(a.dtype).encode()).hexdigest()
        if h in self.consts:
            return self.consts[h]
        k = name or self.name("c")
        if f16:  # cast in the main graph, so that every branch that shares the constant sees it
            self.inits.append(numpy_helper.from_array(a.astype(np.float16), k + "_f16"))
            self.graph_nodes.append(helper.make_node("Cast", [k + "_f16"], [k], to=TensorProto.FLOAT))
        else:
            self.inits.append(numpy_helper.from_array(a, k))
        self.consts[h] = k
        return k

    def op(self, op, inputs, n_out=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def matmul(self, a, w, rows_flops, f16=False):
        """a [..., k] @ w constant [k, n]; rows_flops = rows per face for the FLOP count."""
        self.flops += 2 * rows_flops * w.shape[0] * w.shape[1]
        return self.op("MatMul", [a, self.const(w, f16=f16)])


def separable_axis(g, axis, n, padding):
    """ONNX GridSample (bilinear, align_corners=0) along one axis of a grid that is constant along
    the other (the shipped grids, align = 0, are axis-aligned): the grid's coordinates g [H,W]
    (-1..1) taken along `axis` -> the weights [len, n] that resample a signal of n samples there.
    "border" clamps to the edge samples, "zeros" drops the taps outside (as GridSample does)."""
    c = g[:, 0] if axis == 0 else g[0, :]
    along = c[:, None] if axis == 0 else c[None, :]
    if np.abs(g - along).max() > 1e-9:
        raise ValueError("the grid is not axis-aligned")
    ix = ((c + 1) * n - 1) / 2
    x0 = np.floor(ix).astype(np.int64)
    f = ix - x0
    w = np.zeros((len(c), n))
    for d, wt in ((0, 1 - f), (1, f)):
        i = x0 + d
        if padding == "border":
            np.add.at(w, (np.arange(len(c)), np.clip(i, 0, n - 1)), wt)
        else:
            ok = (i >= 0) & (i < n)
            np.add.at(w, (np.arange(len(c))[ok], i[ok]), wt[ok])
    return w


class Graph:
    """The shared pieces of both graphs for one FaceSpace."""

    def __init__(self, fs, b, alpha):
        self.fs, self.b, self.alpha = fs, b, alpha
        G = fs.G
        self.G = G
        self.D = len(fs.support)
        self.K = fs.syn.shape[1]
        self.m = fs.Q.shape[1]
        full = np.full(3 * G * G, self.D, np.int64)
        full[fs.support] = np.arange(self.D)
        self.scatter_index = full
        # A cut face's validity [1,D] (cut_validity()) and its fits' inverted matrices, by weight.
        self.valid = None
        self.fits = {}

    def inputs(self):
        b = self.b
        n = b.op("Gather", [b.op("Shape", ["image"]), b.const([0], np.int64)], axis=0)
        self.n_shape = n
        self.zeros_col = None
        # align = 0: the warp uses the mean landmarks whatever is fed, so both grids are constants.
        # Computed here (numpy, float64) and stored, they are not rebuilt per call from the batch
        # (onnxruntime cannot fold them: they start from Shape(image) and the overridable
        # `landmarks`); the graphs still accept `landmarks` and ignore it, as before.
        self.baked = float(self.fs.p.get("align", 1.0)) == 0.0
        if self.baked:
            return
        shape = b.op("Concat", [n, b.const([10], np.int64)], axis=0)
        lm = b.op("Expand", ["landmarks", shape])
        a = float(self.fs.p.get("align", 1.0))
        if a != 1.0:  # facespace.effective: mean + align * (landmarks - mean)
            mean = b.const(self.fs.mean_landmarks.reshape(1, 10))
            lm = b.op("Add", [mean, b.op("Mul", [b.op("Sub", [lm, mean]), b.const(a)])])
        self.L5 = b.op("Reshape", [lm, b.const([-1, 5, 2], np.int64)])

    def sampling_grid(self):
        b, G = self.b, self.G
        if self.baked:  # an axis-aligned grid: rows and columns resampled apart (sample())
            g = (self.fs.tps_T @ self.fs.mean_landmarks.reshape(5, 2) * 2 - 1).reshape(2 * G, 2 * G, 2)
            pool = np.kron(np.eye(G), [[0.5, 0.5]])  # the 2 x 2 average, one axis at a time
            self.rows = pool @ separable_axis(g[..., 1], 0, S, "border")  # [G,128]
            self.cols = (pool @ separable_axis(g[..., 0], 1, S, "border")).T  # [128,G]
            return
        g = b.op("MatMul", [b.const(self.fs.tps_T), self.L5])  # [N,4G^2,2]
        b.flops += 2 * self.fs.tps_T.size * 2
        g = b.op("Sub", [b.op("Mul", [g, b.const(2.0)]), b.const(1.0)])
        self.grid = b.op("Reshape", [g, b.const([-1, 2 * G, 2 * G, 2], np.int64)])

    def sample(self, img):
        """img [N,3,128,128] -> masked canonical pixels [N,D]."""
        b, G = self.b, self.G
        if self.baked:  # GridSample and the 2 x 2 average as two small matrix products
            s = b.op("MatMul", [b.const(self.rows), b.op("MatMul", [img, b.const(self.cols)])])
            b.flops += 3 * 2 * (S * S * G + G * S * G)
        else:
            s = b.op("GridSample", [img, self.grid], mode="bilinear", padding_mode="border", align_corners=0)
            s = b.op("AveragePool", [s], kernel_shape=[2, 2], strides=[2, 2])
            b.flops += 3 * (2 * G) ** 2 * 8 + 3 * G * G * 4
        s = b.op("Reshape", [s, b.const([0, -1], np.int64)])
        return b.op("Gather", [s, b.const(self.fs.support, np.int64)], axis=1)

    def cut_validity(self):
        """facespace.valid_samples as nodes: `inside` [N,1,S,S] -> [N,D], 1.0 where the canonical
        sample reads only grid samples inside the frame (the sampling's weights are not negative)."""
        b = self.b
        if not self.baked:
            raise ValueError("the cut path needs the constant grids of align = 0")
        outside = b.op("Sub", [b.const(1.0), CUT_INPUT])
        s = b.op("MatMul", [b.const(self.rows), b.op("MatMul", [outside, b.const(self.cols)])])  # [N,1,G,G]
        s = b.op("Reshape", [b.op("Concat", [s, s, s], axis=1), b.const([0, -1], np.int64)])
        s = b.op("Gather", [s, b.const(self.fs.support, np.int64)], axis=1)
        self.valid = b.op("Cast", [b.op("LessOrEqual", [s, b.const(CUT_EPS)])], to=TensorProto.FLOAT)

    def fit(self, vm, weight):
        """facespace.coordinates for a batch of one cut face: its whitened coordinates [1,K] fitted
        to its valid samples at `weight` [D] (None: 1). The normal matrix is the whole face's,
        stored, less the rows of the samples outside; it is inverted and applied in double
        precision, because fitted to part of the face it is far worse conditioned (condition
        about 1e5 with a quarter of the crop cut), and float32 would miss the exact inverse that
        the restore relies on by a few per cent. The right-hand side is summed in float32 and
        then made double: a double copy of the synthesis matrix would be a folded constant of
        19 MB per face space in every session, a per-cent of memory for a rounding it does not
        need."""
        b, fs = self.b, self.fs
        w = np.ones(self.D) if weight is None else weight
        tag = "ones" if weight is None else "weighted"
        synT = b.const(fs.syn.T, f16=True)  # [K,D], as change() and undo() read it (float16 values: exact in double)
        if tag not in self.fits:
            double = lambda x: b.op("Cast", [x], to=TensorProto.DOUBLE)  # noqa: E731
            outside = b.op("NonZero", [b.op("Less", [b.op("Reshape", [self.valid, b.const([-1], np.int64)]), b.const(0.5)])])
            outside = b.op("Reshape", [outside, b.const([-1], np.int64)])
            cols = double(b.op("Gather", [synT, outside], axis=1))  # [K,n]
            wcols = b.op("Mul", [cols, b.op("Gather", [b.const(w, np.float64), outside], axis=0)])
            normal = b.const(fs.syn.T @ (w[:, None] * fs.syn), np.float64)
            normal = b.op("Sub", [normal, b.op("MatMul", [wcols, b.op("Transpose", [cols], perm=[1, 0])])])
            self.fits[tag] = b.op("Inverse", [normal], domain="com.microsoft")
        inverse = self.fits[tag]
        rhs = b.op("Mul", [vm, b.op("Mul", [self.valid, b.const(w)])])  # [1,D]
        rhs = b.op("Cast", [b.op("MatMul", [synT, b.op("Transpose", [rhs], perm=[1, 0])])], to=TensorProto.DOUBLE)  # [K,1]
        z = b.op("MatMul", [inverse, rhs])  # [K,1]: the normal matrix is symmetric
        return b.op("Cast", [b.op("Transpose", [z], perm=[1, 0])], to=TensorProto.FLOAT)

    def analysis(self, vm, ana, weight):
        """Whitened coordinates of vm: `ana`'s, or a cut face's fit (facespace.coordinates)."""
        if self.valid is None:
            return self.b.matmul(vm, ana.T, 1, f16=True)
        return self.fit(vm, weight)

    def inverse_grid(self):
        """For every crop pixel its canonical point, as GridSample coordinates into the G x G window."""
        b, fs = self.b, self.fs
        if self.baked:  # facespace.inverse_grid at the mean landmarks, to window coordinates
            p = fs.inverse_grid(fs.mean_landmarks.reshape(1, 10), S)[0]
            x0, y0, side = [float(v) for v in fs.window]
            g = (p - [x0, y0]) * (2.0 / side) - 1
            self.irows = separable_axis(g[..., 1], 0, self.G, "zeros")  # [128,G]
            self.icols = separable_axis(g[..., 0], 1, self.G, "zeros").T  # [G,128]
            return
        co = b.op("MatMul", [b.const(fs.tps_minv), self.L5])  # [N,8,2]
        a0 = b.op("Slice", [co, b.const([5], np.int64), b.const([6], np.int64), b.const([1], np.int64)])  # [N,1,2]
        A = b.op("Slice", [co, b.const([6], np.int64), b.const([8], np.int64), b.const([1], np.int64)])  # [N,2,2]
        Af = b.op("Reshape", [A, b.const([-1, 4], np.int64)])
        a, bb, c, d = [b.op("Slice", [Af, b.const([i], np.int64), b.const([i + 1], np.int64), b.const([1], np.int64)]) for i in range(4)]
        det = b.op("Sub", [b.op("Mul", [a, d]), b.op("Mul", [bb, c])])
        inv = b.op("Concat", [d, b.op("Neg", [bb]), b.op("Neg", [c]), a], axis=1)
        Ainv = b.op("Reshape", [b.op("Div", [inv, det]), b.const([-1, 2, 2], np.int64)])
        t = (np.arange(S) + 0.5) / S
        q = np.stack(np.meshgrid(t, t), -1).reshape(1, -1, 2)
        qc = b.const(q)
        p = b.op("MatMul", [b.op("Sub", [qc, a0]), Ainv])
        c5 = b.const(fs.mean_landmarks.reshape(1, 1, 5, 2))
        one = b.const(np.ones((1, S * S, 1)))
        shape1 = b.op("Concat", [self.n_shape, b.const([S * S, 1], np.int64)], axis=0)
        ones = b.op("Expand", [one, shape1])
        for _ in range(fs.iters):
            diff = b.op("Sub", [b.op("Unsqueeze", [p, b.const([2], np.int64)]), c5])
            d2 = b.op("ReduceSum", [b.op("Mul", [diff, diff]), b.const([3], np.int64)], keepdims=0)
            U = b.op("Mul", [b.op("Mul", [d2, b.const(0.5)]), b.op("Log", [b.op("Max", [d2, b.const(1e-20)])])])
            basis = b.op("Concat", [U, ones, p], axis=2)  # [N,S^2,8]
            f = b.op("MatMul", [basis, co])
            p = b.op("Add", [p, b.op("MatMul", [b.op("Sub", [qc, f]), Ainv])])
        b.flops += fs.iters * S * S * (5 * 8 + 8 * 2 * 2 + 8)
        x0, y0, side = [float(v) for v in fs.window]
        g = b.op("Sub", [b.op("Mul", [b.op("Sub", [p, b.const([x0, y0])]), b.const(2.0 / side)]), b.const(1.0)])
        self.igrid = b.op("Reshape", [g, b.const([-1, S, S, 2], np.int64)])

    def scatter(self, d):
        """canonical values [N,D] -> [N,3,G,G] (zero outside the support)."""
        b, G = self.b, self.G
        if self.zeros_col is None:
            shape = b.op("Concat", [self.n_shape, b.const([1], np.int64)], axis=0)
            self.zeros_col = b.op("Expand", [b.const(np.zeros((1, 1))), shape])
        full = b.op("Gather", [b.op("Concat", [d, self.zeros_col], axis=1), b.const(self.scatter_index, np.int64)], axis=1)
        return b.op("Reshape", [full, b.const([-1, 3, G, G], np.int64)])

    def to_crop(self, d):
        """canonical values [N,D] -> crop [N,3,128,128] (zero outside the mask)."""
        b = self.b
        full = self.scatter(d)
        if self.baked:
            b.flops += 3 * 2 * (self.G * self.G * S + S * self.G * S)
            return b.op("MatMul", [b.const(self.irows), b.op("MatMul", [full, b.const(self.icols)])])
        b.flops += 3 * S * S * 8
        return b.op("GridSample", [full, self.igrid], mode="bilinear", padding_mode="zeros", align_corners=0)

    def angles(self):
        b, fs = self.b, self.fs
        L, h = fs.rot_A.shape[:2]
        A = fs.rot_A.transpose(2, 0, 1).reshape(128, L * h)
        th = b.op("Add", [b.matmul("key", A, 1), b.const(fs.rot_b.reshape(-1))])
        self.cos = b.op("Cos", [th])
        self.sin = b.op("Sin", [th])

    def rotate(self, u, inverse=False):
        b, fs = self.b, self.fs
        L, h = fs.rot_A.shape[:2]
        ev = b.const(np.arange(0, self.m, 2), np.int64)
        od = b.const(np.arange(1, self.m, 2), np.int64)
        order = range(L) if not inverse else reversed(range(L))
        for i in order:
            if not inverse:
                u = b.matmul(u, fs.rot_O[i].T, 1)
            st, en = b.const([i * h], np.int64), b.const([(i + 1) * h], np.int64)
            ax = b.const([1], np.int64)
            c = b.op("Slice", [self.cos, st, en, ax])
            s = b.op("Slice", [self.sin, st, en, ax])
            if inverse:
                s = b.op("Neg", [s])
            e = b.op("Gather", [u, ev], axis=1)
            o = b.op("Gather", [u, od], axis=1)
            e2 = b.op("Sub", [b.op("Mul", [c, e]), b.op("Mul", [s, o])])
            o2 = b.op("Add", [b.op("Mul", [s, e]), b.op("Mul", [c, o])])
            u = b.op("Concat", [b.op("Unsqueeze", [e2, b.const([2], np.int64)]),
                                b.op("Unsqueeze", [o2, b.const([2], np.int64)])], axis=2)
            u = b.op("Reshape", [u, b.const([0, -1], np.int64)])
            b.flops += 6 * self.m
            if inverse:
                u = b.matmul(u, fs.rot_O[i], 1)
        return u

    def attr_shift(self):
        return self.b.matmul("attributes", self.fs.attr_dirs, 1)

    def change(self, v, linear=False):
        """canonical_change of facespace.py."""
        b, fs = self.b, self.fs
        vm = v if linear else b.op("Sub", [v, b.const(fs.mu)])
        z = self.analysis(vm, fs.ana, None)
        u = b.matmul(z, fs.Q, 1)
        ur = self.rotate(u)
        du = b.op("Sub", [ur, u])
        dz = b.matmul(du, fs.Q.T, 1)
        if not linear:
            dz = b.op("Add", [dz, self.attr_shift()])
        if self.alpha == 1.0:
            return b.matmul(dz, fs.syn.T, 1, f16=True)
        # dz and z through the synthesis in one product: at the few faces of a frame it is bound
        # by reading the 9 MB matrix, not by arithmetic, so one read instead of two.
        both = b.op("Concat", [b.op("Unsqueeze", [dz, b.const([0], np.int64)]),
                               b.op("Unsqueeze", [z, b.const([0], np.int64)])], axis=0)  # [2,N,K]
        out = b.matmul(both, fs.syn.T, 2, f16=True)
        d = b.op("Gather", [out, b.const(0, np.int64)], axis=0)
        r = b.op("Sub", [vm, b.op("Gather", [out, b.const(1, np.int64)], axis=0)])
        if self.valid is not None:  # a cut face's detail is taken off only where it was fitted
            r = b.op("Mul", [r, self.valid])
        return b.op("Sub", [d, b.op("Mul", [r, b.const((1 - self.alpha) * fs.mask)])])

    def undo(self, v2, linear=False):
        """canonical_undo of facespace.py."""
        b, fs = self.b, self.fs
        vm = v2 if linear else b.op("Sub", [v2, b.const(fs.mu)])
        z2 = self.read_back(vm)
        zs = b.op("Sub", [z2, self.attr_shift()]) if not linear else z2
        u2 = b.matmul(zs, fs.Q, 1)
        du = b.op("Sub", [self.rotate(u2, inverse=True), u2])
        z = b.op("Add", [zs, b.matmul(du, fs.Q.T, 1)])
        # v = z syn + r with r = (vm - z2 syn) (x the detail gain): z and z2 through the
        # synthesis in one product, as in change().
        both = b.op("Concat", [b.op("Unsqueeze", [z, b.const([0], np.int64)]),
                               b.op("Unsqueeze", [z2, b.const([0], np.int64)])], axis=0)  # [2,N,K]
        out = b.matmul(both, fs.syn.T, 2, f16=True)
        r = b.op("Sub", [vm, b.op("Gather", [out, b.const(1, np.int64)], axis=0)])
        if self.alpha != 1.0 and self.valid is None:
            r = b.op("Mul", [r, b.const(fs.detail_gain)])
        elif self.alpha != 1.0:  # r (1 + (gain - 1) valid): scaled back up only where it was scaled
            r = b.op("Add", [r, b.op("Mul", [b.op("Mul", [r, self.valid]), b.const(fs.detail_gain - 1)])])
        v = b.op("Add", [b.op("Gather", [out, b.const(0, np.int64)], axis=0), r])
        return b.op("Sub", [v, vm])

    def read_back(self, vm):
        """facespace.read_back's coordinates z2."""
        fs = self.fs
        if self.alpha != 1.0:
            return self.analysis(vm, fs.ana_alpha, fs.read_weight)
        return self.analysis(vm, fs.ana, None)

    def fine_chroma(self, v2):
        """fine_chroma of facespace.py: the detail's chroma finer than CHROMA_DETAIL_SIGMA, masked."""
        b, fs, G = self.b, self.fs, self.G
        vm = b.op("Sub", [v2, b.const(fs.mu)])
        z2 = self.read_back(vm)
        full = self.scatter(b.op("Sub", [vm, b.matmul(z2, fs.syn.T, 1, f16=True)]))  # [N,3,G,G]
        luma = b.op("ReduceSum", [b.op("Mul", [full, b.const(LUMA.reshape(1, 3, 1, 1))]), b.const([1], np.int64)], keepdims=1)
        chroma = b.op("Sub", [full, luma])
        w = gaussian_taps(CHROMA_DETAIL_SIGMA)
        r = len(w) // 2
        blurred = b.op("Conv", [chroma, b.const(np.tile(w.reshape(1, 1, 1, -1), (3, 1, 1, 1)))], group=3, pads=[0, r, 0, r])
        blurred = b.op("Conv", [blurred, b.const(np.tile(w.reshape(1, 1, -1, 1), (3, 1, 1, 1)))], group=3, pads=[r, 0, r, 0])
        b.flops += 3 * G * G * (2 * 2 * len(w) + 6)
        fine = b.op("Reshape", [b.op("Sub", [chroma, blurred]), b.const([0, -1], np.int64)])
        fine = b.op("Gather", [fine, b.const(fs.support, np.int64)], axis=1)
        return b.op("Mul", [fine, b.const(fs.mask)])


def bend_nodes(b, y, inverse=False):
    """facespace.bend / unbend as nodes, written without a branch: with c = y clipped to +-BEND,
    bend(y) = c + (1 - BEND) tanh((y - c) / (1 - BEND)) (tanh is odd, and 0 inside the band), the
    same values as facespace.py's where/sign form in a third of onnxruntime's time. unbend takes
    atanh of t cut off at +-knee (the overridable scalar `unbend_knee`, UNBEND_MAX unless a caller
    gives LOSSY_UNBEND_KNEE) and adds what the cut took off times facespace.unbend_slope(knee)."""
    from facespace import BEND, UNBEND_MAX
    c = b.op("Clip", [y, b.const(-BEND), b.const(BEND)])
    t = b.op("Mul", [b.op("Sub", [y, c]), b.const(1 / (1 - BEND))])
    if inverse:
        knee = "unbend_knee"
        tk = b.op("Clip", [t, b.op("Neg", [knee]), knee])
        kc = b.op("Min", [knee, b.const(UNBEND_MAX)])
        slope = b.op("Where", [b.op("Less", [knee, b.const(UNBEND_MAX)]),
                               b.op("Reciprocal", [b.op("Sub", [b.const(1.0), b.op("Mul", [kc, kc])])]), b.const(0.0)])
        t = b.op("Add", [b.op("Atanh", [tk]), b.op("Mul", [b.op("Sub", [t, tk]), slope])])
    else:
        t = b.op("Tanh", [t])
    return b.op("Add", [c, b.op("Mul", [t, b.const(1 - BEND)])])


def outside_share_nodes(b, fs, alpha):
    """The share of face space fs's canonical samples that read grid samples past the frame's
    edge (facespace.valid_samples), as nodes: a scalar."""
    g = Graph(fs, b, alpha)
    g.inputs()
    g.sampling_grid()
    g.cut_validity()
    return b.op("Sub", [b.const(1.0), b.op("ReduceMean", [g.valid], keepdims=0)])


def face_space_nodes(b, fs, alpha, direction, cut=False):
    """One face space's anonymize or restore of `image`, as nodes: the output's name. `cut`: of a
    batch of one face cut by the frame's edge, fitted to the canonical samples inside it."""
    g = Graph(fs, b, alpha)
    g.inputs()
    g.sampling_grid()
    if cut:
        g.cut_validity()
    g.inverse_grid()
    g.angles()
    if direction == "anonymize":
        return bend_nodes(b, b.op("Add", ["image", g.to_crop(g.change(g.sample("image")))]))
    # facespace.restore
    yin = bend_nodes(b, "image", inverse=True)
    # A 4:2:0 input's fine chroma detail is mostly the codec's: drop it by each face's
    # `chroma_pitch` [N,1] (facespace.chroma_drop; 0, the default, drops none: the
    # subtracted term is then exactly zero).
    drop = b.op("Mul", [b.op("Sub", ["chroma_pitch", b.const(CHROMA_PITCH_KEEP)]), b.const(1 / (CHROMA_PITCH_DROP - CHROMA_PITCH_KEEP))])
    drop = b.op("Clip", [drop, b.const(0.0), b.const(1.0)])
    yin = b.op("Sub", [yin, g.to_crop(b.op("Mul", [g.fine_chroma(g.sample(yin)), drop]))])
    x = b.op("Add", [yin, g.to_crop(g.undo(g.sample(yin)))])
    for _ in range(int(fs.restore_steps)):
        e = b.op("Sub", [yin, b.op("Add", [x, g.to_crop(g.change(g.sample(x)))])])
        if cut:  # past the frame the surrogate is only its edge repeated: no error to correct there
            e = b.op("Mul", [e, CUT_INPUT])
        x = b.op("Add", [b.op("Add", [x, e]), g.to_crop(g.undo(g.sample(e), linear=True))])
    return b.op("Clip", [x, b.const(-1.0), b.const(1.0)])


def grey_nodes(b, levels):
    """facespace.chroma_levels(image) < levels (a number, or a node's name), as nodes: [N,1,1,1]
    booleans."""
    lo, hi = GREY_BOX
    ax = b.const([2, 3], np.int64)
    c = b.op("Slice", ["image", b.const([lo, lo], np.int64), b.const([hi, hi], np.int64), ax])
    c = b.op("Abs", [b.op("Sub", [c, b.op("ReduceMean", [c], axes=[1], keepdims=1)])])
    m = b.op("ReduceMean", [c], axes=[1, 2, 3], keepdims=1)
    b.flops += 3 * 3 * (hi - lo) ** 2
    limit = b.const(levels / 127.5) if isinstance(levels, float) else b.op("Div", [levels, b.const(127.5)])
    return b.op("Less", [m, limit])


def build(fs, alpha, direction, grey=None):
    """The anonymize or restore graph of face space `fs`; with `grey` (the grey face space),
    each face through the one its colour picks (facespace.GreyAndColour)."""
    b = Builder()
    # Each face space's path side by side as Ifs, never nested (onnxruntime runs a face space in
    # an If inside an If at half the speed), each face keeping its own path's result: a batch of
    # colour faces (the usual one) runs the colour face space alone, a batch of grey ones (an
    # infrared camera's) the grey one, a batch of both runs both. A batch of one face cut by the
    # frame's edge runs its face space's cut path instead.
    n = b.op("Gather", [b.op("Shape", ["image"]), b.const([0], np.int64)], axis=0)
    one = b.op("Equal", [b.op("Reshape", [n, b.const([], np.int64)]), b.const(1, np.int64)])
    # Whether to look at all: a batch of one face with a grid sample past the frame's edge.
    cut_grid = b.op("And", [one, b.op("Less", [b.op("ReduceMin", [CUT_INPUT], keepdims=0), b.const(0.5)])])
    if direction == "restore":
        cut_grid = b.op("And", [cut_grid, b.op("Greater", [CUT_RESTORE_INPUT, b.const(0.5)])])
    if grey is None:
        spaces = [(fs, None)]
    else:
        # The restore's limit is an input (GREY_RESTORE_INPUT): 0 restores every face with the colour
        # face space, as a stream of sdn-0.6.3, which had no grey one, needs (sdn.json's earlier_maps).
        is_grey = grey_nodes(b, GREY_LEVELS if direction == "anonymize" else GREY_RESTORE_INPUT)
        spaces = [(grey, is_grey), (fs, b.op("Not", [is_grey]))]
    out = "image"
    for space, faces in spaces:
        count = None if faces is None else b.op("Cast", [faces], to=TensorProto.INT32)
        some = b.const(True, np.bool_) if faces is None else b.op("Cast", [b.op("ReduceMax", [count], keepdims=0)], to=TensorProto.BOOL)
        # The share of samples outside, measured only for such a batch (0 otherwise), so that a
        # whole face pays nothing for it.
        share = b.op("If", [cut_grid], then_branch=b.branch(lambda: outside_share_nodes(b, space, alpha)),
                     else_branch=b.branch(lambda: b.op("Identity", [b.const(0.0)])))
        cut = b.op("And", [b.op("Greater", [share, b.const(0.0)]), b.op("LessOrEqual", [share, b.const(CUT_LIMIT)])])
        whole = b.op("Not", [cut])
        for on_cut in (False, True):
            flops = b.flops
            branch = b.branch(lambda: face_space_nodes(b, space, alpha, direction, cut=on_cut))
            if on_cut or space is not fs:  # what a face costs: the colour face space's whole-face path
                b.flops = flops
            run = b.op("And", [some, cut if on_cut else whole])
            skipped = b.branch(lambda: b.op("Identity", ["image"]))
            result = b.op("If", [run], then_branch=branch, else_branch=skipped)
            take = run if faces is None else b.op("And", [faces, run])
            out = b.op("Where", [take, result, out])
    b.nodes.append(helper.make_node("Identity", [out], ["image_out"]))
    lm_default = numpy_helper.from_array(fs.mean_landmarks.reshape(1, 10).astype(np.float32), "landmarks")
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, S, S]),
              helper.make_tensor_value_info("key", TensorProto.FLOAT, ["N", 128]),
              helper.make_tensor_value_info("attributes", TensorProto.FLOAT, ["N", 6]),
              helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["M", 10])]
    inside_default = numpy_helper.from_array(np.ones((1, 1, S, S), np.float32), CUT_INPUT)
    inputs.append(helper.make_tensor_value_info(CUT_INPUT, TensorProto.FLOAT, ["C", 1, S, S]))
    defaults = [lm_default, inside_default]
    if direction == "restore":
        defaults.append(numpy_helper.from_array(np.array(1.0, np.float32), CUT_RESTORE_INPUT))
        inputs.append(helper.make_tensor_value_info(CUT_RESTORE_INPUT, TensorProto.FLOAT, []))
        # how far restore unbends exactly: the runtime gives the lossy knee for lossy inputs
        from facespace import UNBEND_MAX
        defaults.append(numpy_helper.from_array(np.array(UNBEND_MAX, np.float32), "unbend_knee"))
        inputs.append(helper.make_tensor_value_info("unbend_knee", TensorProto.FLOAT, []))
        defaults.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "chroma_pitch"))
        inputs.append(helper.make_tensor_value_info("chroma_pitch", TensorProto.FLOAT, ["P", 1]))
        if grey is not None:
            defaults.append(numpy_helper.from_array(np.array(GREY_RESTORE_LEVELS, np.float32), GREY_RESTORE_INPUT))
            inputs.append(helper.make_tensor_value_info(GREY_RESTORE_INPUT, TensorProto.FLOAT, []))
    outputs = [helper.make_tensor_value_info("image_out", TensorProto.FLOAT, ["N", 3, S, S])]
    graph = helper.make_graph(b.nodes, f"faceveil_{MODEL_ID}_{direction}", inputs, outputs, defaults + b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="faceveil models/sdn/export.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, b.flops


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def timings(sessions, x, key, attrs, batches=(1, 2, 8), reps=20):
    """ms a face without landmarks (as the runtime runs it) at each batch size, for each session:
    the best of reps runs over the batch after one warm-up run. The machine is shared, so the
    minimum, and the sessions' runs alternate so that a change of load hits all of them alike."""
    out = [{} for _ in sessions]
    for bs in batches:
        f = {"image": x[:bs], "key": key[:bs], "attributes": attrs[:bs]}
        best = [1e9] * len(sessions)
        for r in range(reps + 1):
            for i, s in enumerate(sessions):
                t = time.perf_counter()
                s.run(["image_out"], f)
                if r:
                    best[i] = min(best[i], time.perf_counter() - t)
        for i in range(len(sessions)):
            out[i][str(bs)] = round(best[i] * 1000 / bs, 2)
    return out


def compare(model_dir, ref_dir, x, key, attrs, grey_x=None):
    """Max abs difference of both graphs from the graphs in ref_dir (the same crops, no landmarks;
    restore from the uint8 anonymized crop), and the ms a face of both at batch 1, 2 and 8. With
    grey crops `grey_x` (the same keys), for an earlier model without a grey face space: the
    difference of the restore given the earlier map's inputs (EARLIER_RESTORE) from its own, on its
    surrogates of grey faces."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    res = {}
    for fname in ("sdn.onnx", "sdn_restore.onnx"):
        new = ort.InferenceSession(os.path.join(model_dir, fname), so, providers=["CPUExecutionProvider"])
        old = ort.InferenceSession(os.path.join(ref_dir, fname), so, providers=["CPUExecutionProvider"])
        xin = x
        if fname == "sdn_restore.onnx":  # restore what the reference anonymize wrote, as uint8
            a = ort.InferenceSession(os.path.join(ref_dir, "sdn.onnx"), so, providers=["CPUExecutionProvider"])
            y = a.run(["image_out"], {"image": x, "key": key, "attributes": attrs})[0]
            xin = (np.rint((y + 1) * 127.5) / 127.5 - 1).astype(np.float32)
        f = {"image": xin, "key": key, "attributes": attrs}
        d = np.abs(new.run(["image_out"], f)[0] - old.run(["image_out"], f)[0]).max()
        t_old, t_new = timings([old, new], xin, key, attrs)
        res[fname] = dict(maxabs_vs_ref=float(d), ms_per_face_ref=t_old, ms_per_face=t_new)
        if fname == "sdn_restore.onnx" and grey_x is not None:
            y = a.run(["image_out"], {"image": grey_x, "key": key, "attributes": attrs})[0]
            f = {"image": (np.rint((y + 1) * 127.5) / 127.5 - 1).astype(np.float32), "key": key, "attributes": attrs}
            earlier = {k: np.array(v, np.float32) for k, v in EARLIER_RESTORE.items()}
            d = np.abs(new.run(["image_out"], dict(f, **earlier))[0] - old.run(["image_out"], f)[0]).max()
            res[fname]["grey_faces_as_earlier_map_maxabs_vs_ref"] = float(d)
    return res


def check(model_dir, fs, n, data, ref_dir=None):
    """Both graphs against facespace.py on n held-out crops; with and without landmarks. With a
    grey face space (fs a GreyAndColour) on grey copies of the crops as well, after them."""
    import onnxruntime as ort
    lab = np.load(os.path.join(data, "labels.npz"))
    sel = np.nonzero(lab["split"] == 1)[0][:: max(1, (lab["split"] == 1).sum() // n)][:n]
    off = (int(lab["store"]) - 128) // 2
    fr = np.stack([np.load(os.path.join(data, f"shard_{lab['shard'][i]:03d}.npy"), mmap_mode="r")[lab["index"][i]] for i in sel])
    n_colour = len(sel)  # compare() takes these only: the earlier graphs had no grey face space
    if isinstance(fs, GreyAndColour):
        grey = np.repeat(np.rint(fr @ LUMA)[..., None], 3, -1).astype(np.uint8)
        fr, sel = np.concatenate([fr, grey]), np.concatenate([sel, sel])
    x = fr[:, off:off + 128, off:off + 128].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    lm = lab["landmarks"][sel].astype(np.float32)
    rng = np.random.RandomState(5)
    key = np.sign(rng.randn(len(sel), 128)).astype(np.float32)
    attrs = np.zeros((len(sel), 6), np.float32)
    attrs[:, 0] = 1.0
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sa = ort.InferenceSession(os.path.join(model_dir, "sdn.onnx"), so, providers=["CPUExecutionProvider"])
    sr = ort.InferenceSession(os.path.join(model_dir, "sdn_restore.onnx"), so, providers=["CPUExecutionProvider"])
    t = time.time()
    y = sa.run(["image_out"], {"image": x, "key": key, "attributes": attrs, "landmarks": lm})[0]
    ta = (time.time() - t) / len(sel)
    y_ref = fs.anonymize(x, lm, key, attrs)
    yq = (np.rint((y + 1) * 127.5) / 127.5 - 1).astype(np.float32)
    t = time.time()
    xr = sr.run(["image_out"], {"image": yq, "key": key, "attributes": attrs, "landmarks": lm})[0]
    tr = (time.time() - t) / len(sel)
    y_nolm = sa.run(["image_out"], {"image": x, "key": key, "attributes": attrs})[0]
    y_ref_nolm = fs.anonymize(x, np.tile(fs.mean_landmarks, (len(sel), 1)), key, attrs)
    xr_nolm = sr.run(["image_out"], {"image": (np.rint((y_nolm + 1) * 127.5) / 127.5 - 1).astype(np.float32),
                                     "key": key, "attributes": attrs})[0]
    psnr = lambda a, c: float(10 * np.log10(4 / np.mean((a - c) ** 2)))  # noqa: E731
    # The restore for lossy inputs, from the surrogate through JPEG q75 (4:2:0), against facespace.py.
    u8 = np.rint((y_nolm + 1) * 127.5).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    yj = np.stack([cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 75])[1], cv2.IMREAD_UNCHANGED) for im in u8])
    yj = (yj.transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    lossy = {k: np.array(v, np.float32) for k, v in LOSSY_RESTORE.items()}
    f = {"image": yj, "key": key, "attributes": attrs}
    xj_exact = sr.run(["image_out"], f)[0]
    xj_knee = sr.run(["image_out"], dict(f, unbend_knee=lossy["unbend_knee"]))[0]
    pitch = np.full((len(sel), 1), 2.0, np.float32)  # JPEG's 4:2:0 on the 128 crop itself
    xj_lossy = sr.run(["image_out"], dict(f, chroma_pitch=pitch, **lossy))[0]
    lm0 = np.tile(fs.mean_landmarks, (len(sel), 1))
    lossy_vs_numpy = float(np.abs(xj_lossy - fs.restore(yj, lm0, key, attrs, knee=LOSSY_UNBEND_KNEE, chroma_pitch=pitch[:, 0])).max())
    extra = {"ms_per_face_batch_1_2_8": {"anonymize": timings([sa], x, key, attrs)[0], "restore": timings([sr], yq, key, attrs)[0]}}
    if n_colour < len(x):  # the grey copies: their surrogates' largest channel difference (levels), their restore
        u8 = np.rint((y[n_colour:] + 1) * 127.5)
        extra["grey_faces"] = {"surrogate_off_grey_max": float((u8.max(1) - u8.min(1)).max()),
                               "restore_psnr_uint8": psnr(xr[n_colour:], x[n_colour:]),
                               "restore_psnr_uint8_colour_faces": psnr(xr[:n_colour], x[:n_colour])}
    extra["cut"] = check_cut(sa, sr, fs, x[:4], key[:4], attrs[:4])
    if ref_dir:
        extra["against_" + os.path.basename(os.path.normpath(ref_dir))] = compare(model_dir, ref_dir, x[:n_colour], key[:n_colour], attrs[:n_colour],
                                                                            x[n_colour:] if n_colour < len(x) else None)
    return dict(extra, faces=len(sel), anonymize_vs_numpy_maxabs=float(np.abs(y - y_ref).max()),
                anonymize_no_landmarks_vs_numpy_maxabs=float(np.abs(y_nolm - y_ref_nolm).max()),
                restore_psnr_uint8=psnr(xr, x), restore_psnr_uint8_no_landmarks=psnr(xr_nolm, x),
                restore_psnr_jpeg75=psnr(xj_exact, x), restore_psnr_jpeg75_lossy_knee=psnr(xj_knee, x),
                restore_psnr_jpeg75_lossy=psnr(xj_lossy, x), restore_lossy_vs_numpy_maxabs=lossy_vs_numpy,
                change_rms=float(np.sqrt(np.mean((y - x) ** 2))),
                ms_anonymize_per_face=round(ta * 1000, 2), ms_restore_per_face=round(tr * 1000, 2))


def check_cut(sa, sr, fs, x, key, attrs, share=0.25):
    """Faces with the left `share` of their crop past the frame's edge (repeated there, as the
    runtime's grid does), one at a time: both graphs against facespace.py, and the restore's PSNR
    over the part inside the frame, from the uint8 surrogate with its edge repeated again, with
    the cut path and without it (mask_cuts 0, as for a stream of a model before it)."""
    c = int(round(share * S))
    inside = np.ones((1, 1, S, S), np.float32)
    inside[..., :c] = 0
    pad = lambda im: np.concatenate([np.repeat(im[..., c:c + 1], c, axis=-1), im[..., c:]], axis=-1)  # noqa: E731
    q = lambda y: (np.rint((y + 1) * 127.5) / 127.5 - 1).astype(np.float32)  # noqa: E731
    lm = fs.mean_landmarks.reshape(1, 10)
    diffs, fitted, before = [], [], []
    for i in range(len(x)):
        f = {"image": pad(x[i:i + 1]), "key": key[i:i + 1], "attributes": attrs[i:i + 1], CUT_INPUT: inside}
        y = sa.run(["image_out"], f)[0]
        diffs.append(np.abs(y - fs.anonymize(f["image"], lm, f["key"], f["attributes"], inside=inside)).max())
        back = sr.run(["image_out"], dict(f, image=pad(q(y))))[0]
        diffs.append(np.abs(back - fs.restore(pad(q(y)), lm, f["key"], f["attributes"], inside=inside)).max())
        fitted.append(np.mean((back - x[i:i + 1])[..., c:] ** 2))
        g = {k: v for k, v in f.items() if k != CUT_INPUT}
        old = sr.run(["image_out"], dict(g, image=pad(q(sa.run(["image_out"], g)[0]))))[0]
        before.append(np.mean((old - x[i:i + 1])[..., c:] ** 2))
    psnr = lambda m: float(10 * np.log10(4 / m))  # noqa: E731
    return {"share_of_crop_cut": share, "faces": len(x), "vs_numpy_maxabs": float(max(diffs)),
            "restore_psnr_uint8": psnr(np.mean(fitted)), "restore_psnr_uint8_without_cut_path": psnr(np.mean(before))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npz", default=os.path.join(HERE, "facespace.npz"))
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--alpha", type=float, default=None, help="override the npz's detail amplitude")
    ap.add_argument("--align", type=float, default=None, help="override the npz's alignment strength (0: landmarks ignored)")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--grey-npz", default=os.path.join(HERE, "facespace_grey.npz"),
                    help="the grey face space that grey faces go through ('': none, every face through --npz's)")
    ap.add_argument("--check", type=int, default=16)
    ap.add_argument("--compare", default=None, help="a folder with earlier sdn.onnx / sdn_restore.onnx: "
                    "max abs difference from them and their ms a face, recorded in the check")
    args = ap.parse_args()
    over = {} if args.alpha is None else {"alpha": np.array(args.alpha)}
    if args.align is not None:
        over["align"] = np.array(args.align)
    fs = FaceSpace.load(args.npz, **over)
    grey = FaceSpace.load(args.grey_npz, **over) if args.grey_npz else None
    alpha = fs.alpha
    flops = {}
    for direction, fname in (("anonymize", "sdn.onnx"), ("restore", "sdn_restore.onnx")):
        model, fl = build(fs, alpha, direction, grey)
        onnx.save(model, os.path.join(args.out, fname))
        flops[direction] = fl
        print(f"{fname}: {len(model.graph.node)} nodes, {fl / 1e9:.4f} GFLOP a face, "
              f"{os.path.getsize(os.path.join(args.out, fname)) / 2**20:.1f} MiB", flush=True)
    reference = GreyAndColour(fs, grey) if grey is not None else fs
    res = check(args.out, reference, args.check, args.data, args.compare) if args.check else {}
    print(json.dumps(res), flush=True)
    info = json.loads(str(fs.info))
    spec_path = os.path.join(args.out, "sdn.json")
    spec = json.load(open(spec_path))
    earlier_id, earlier_graph = spec.get("model_id"), spec.get("sha256", {}).get("sdn.onnx")
    spec["model_id"] = MODEL_ID
    spec["default_variant"] = "fast"
    # chroma_pitch: per face, for a restore from a 4:2:0 input, the spacing of its chroma samples
    # in crop pixels (2 x input_size / the face square's side in the frame); none: exact.
    # inside: per face, 1 where its grid lies in the frame (a face cut by the frame's edge).
    spec["inputs"] = {"image": "image", "key": "key", "attributes": "attributes", "chroma_pitch": "chroma_pitch",
                      "inside": CUT_INPUT}
    # The restore graph's scalar inputs, and what the runtime gives them where a restore's input
    # went through a lossy codec (left at the graph's defaults, the restore is exact).
    spec["lossy_restore"] = LOSSY_RESTORE
    # The runtime feeds, and records in the stream's clear records, the landmarks sdn.json names.
    # They describe a face's geometry, which identifies people: name them only where the graphs
    # apply them (align > 0). The graphs keep the optional input either way.
    if float(fs.p.get("align", 1.0)) != 0.0:
        spec["inputs"]["landmarks"] = "landmarks"
        spec["landmarks"] = {"order": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
                             "coordinates": "x,y in the 128 crop normalised to 0..1 (0 = left/top edge, 1 = right/bottom edge)",
                             "optional": True}
        spec["mean_landmarks"] = [round(float(v), 6) for v in fs.mean_landmarks]
    else:
        spec.pop("landmarks", None)
        spec.pop("mean_landmarks", None)
    spec["variants"] = {"fast": {
        "architecture": "facespace",
        "anonymize": "sdn.onnx",
        "restore": "sdn_restore.onnx",
        "gflops": round(max(flops.values()) / 1e9, 4),
        "gflops_anonymize": round(flops["anonymize"] / 1e9, 4),
        "gflops_restore": round(flops["restore"] / 1e9, 4),
        "detail_alpha": alpha,
        "align": float(fs.p.get("align", 1.0)),
        "fit": info,
        "check": res,
    }}
    if grey is not None:
        # Grey faces (facespace.chroma_levels of the crop below `levels`; a restore's input below
        # `restore_levels`) go through the grey face space, in the same graphs.
        spec["variants"]["fast"]["grey"] = {"npz": os.path.basename(args.grey_npz), "levels": GREY_LEVELS,
                                            "restore_levels": GREY_RESTORE_LEVELS,
                                            "restore_input": GREY_RESTORE_INPUT, "box": list(GREY_BOX),
                                            "fit": json.loads(str(grey.info))}
    spec["sha256"] = {f: sha256(os.path.join(args.out, f)) for f in ("sdn.onnx", "sdn_restore.onnx")}
    # Stream headers name the anonymize graph by its hash. Earlier graphs of this model id that
    # compute the same map (--compare, both directions within SAME_MAP_TOLERANCE) are listed so
    # that the streams they made still restore; an earlier model whose map is this one's with
    # other restore inputs goes into earlier_maps with them. Without --compare both lists are
    # kept only for the same anonymize graph (a re-export); anything unchecked starts them afresh.
    same, earlier_maps = [], []
    if args.compare and res:
        ref_spec = json.load(open(os.path.join(args.compare, "sdn.json")))
        against = res["against_" + os.path.basename(os.path.normpath(args.compare))]
        ref_graphs = ref_spec.get("same_map_as", []) + [sha256(os.path.join(args.compare, "sdn.onnx"))]
        if ref_spec.get("model_id") == MODEL_ID and all(v["maxabs_vs_ref"] <= SAME_MAP_TOLERANCE for v in against.values()):
            same = ref_graphs
            earlier_maps = ref_spec.get("earlier_maps", [])
        elif (ref_spec.get("model_id") == BEFORE_CUTS_MODEL
              and all(v["maxabs_vs_ref"] <= SAME_MAP_TOLERANCE for v in against.values())):
            # The model before the cut path, whose map is this one's on whole faces: its streams
            # (and those of the models its earlier_maps name) restore with the cut path off.
            earlier_maps = [dict(m, restore_inputs=dict(m["restore_inputs"], **BEFORE_CUTS_RESTORE))
                            for m in ref_spec.get("earlier_maps", [])]
            earlier_maps.append({"model_id": ref_spec["model_id"], "graphs": ref_graphs, "restore_inputs": BEFORE_CUTS_RESTORE})
        elif (grey is not None and "grey" not in ref_spec["variants"].get("fast", {})
              and all(v["maxabs_vs_ref"] <= SAME_MAP_TOLERANCE for v in against.values())
              and against["sdn_restore.onnx"].get("grey_faces_as_earlier_map_maxabs_vs_ref", 1.0) <= SAME_MAP_TOLERANCE):
            # A model without a grey face space whose map is this one's on colour faces: its
            # streams restore with EARLIER_RESTORE (every face through the colour face space).
            earlier_maps = [{"model_id": ref_spec["model_id"], "graphs": ref_graphs, "restore_inputs": EARLIER_RESTORE}]
    elif earlier_id == MODEL_ID and earlier_graph == spec["sha256"]["sdn.onnx"]:
        same, earlier_maps = spec.get("same_map_as", []), spec.get("earlier_maps", [])
    spec["earlier_maps"] = earlier_maps
    spec["same_map_as"] = sorted(set(same) - {spec["sha256"]["sdn.onnx"]})
    with open(spec_path + ".tmp", "w") as f:
        json.dump(spec, f, indent=1)
        f.write("\n")
    os.replace(spec_path + ".tmp", spec_path)
    print(f"wrote {spec_path}", flush=True)


if __name__ == "__main__":
    main()
