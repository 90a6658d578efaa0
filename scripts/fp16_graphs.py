"""Half-precision copies of the two graphs a frame goes through (the SDN's anonymize graph and
CenterFace), for measuring them on a GPU (scripts/gpu_stages.sh); nothing ships them.

    deps/sdn-venv/bin/python -m pip install onnxconverter-common==1.16.0   # once; not a project dependency
    deps/sdn-venv/bin/python scripts/fp16_graphs.py OUT_DIR

Writes OUT_DIR/sdn/{sdn.onnx,sdn.json} (a model folder the runtime opens: float16 inside, float32
inputs and output, sdn.json's hash of the new graph) and OUT_DIR/centerface.onnx (float32 in and
out as well), then prints how far each is from the float32 graph on a frame of the sample clip:
the SDN on its faces' crops, CenterFace's heat map and the faces it finds there.
"""
import hashlib
import json
import os
import shutil
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from onnxconverter_common import float16

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def all_nodes(g):
    """The graph's nodes and those of its subgraphs (the SDN's If branches), all the way down."""
    for n in g.node:
        yield n
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                yield from all_nodes(sub)


def to_fp16(src, dst):
    """All float tensors to float16, with float32 kept at the graph's inputs and outputs."""
    m = float16.convert_float_to_float16(onnx.load(src), keep_io_types=False, check_fp16_ready=False, op_block_list=[])
    g = m.graph
    # export.py stores its large matrices in float16 and casts them up; they now stay float16.
    for n in g.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    del g.value_info[:]
    # An input that feeds no node (the SDN's optional `landmarks`, ignored at align = 0) goes.
    used = {i for n in all_nodes(g) for i in n.input}
    for inp in [i for i in g.input if i.name not in used]:
        g.input.remove(inp)
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    casts = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT16:
            h = inp.name + "_fp16"
            for n in all_nodes(g):
                n.input[:] = [h if i == inp.name else i for i in n.input]
            casts.append(helper.make_node("Cast", [inp.name], [h], name=h, to=TensorProto.FLOAT16))
            inp.type.tensor_type.elem_type = TensorProto.FLOAT
    for out in g.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT16:
            h = out.name + "_fp16"
            for n in g.node:
                n.output[:] = [h if o == out.name else o for o in n.output]
            g.node.append(helper.make_node("Cast", [h], [out.name], name=out.name + "_fp32", to=TensorProto.FLOAT))
            out.type.tensor_type.elem_type = TensorProto.FLOAT
    for n in reversed(casts):
        g.node.insert(0, n)
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def peaks(heat, thr=0.4):
    """CenterFace's face centres: local maxima of the heat map above thr."""
    h = heat[0, 0]
    mx = cv2.dilate(h, np.ones((3, 3), np.uint8))
    return {(int(y), int(x)) for y, x in zip(*np.nonzero((h == mx) & (h > thr)))}


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "sdn"), exist_ok=True)
    sdn_dir = os.path.join(ROOT, "models", "sdn")
    to_fp16(os.path.join(sdn_dir, "sdn.onnx"), os.path.join(out, "sdn", "sdn.onnx"))
    spec = json.load(open(os.path.join(sdn_dir, "sdn.json")))
    spec["sha256"] = {"sdn.onnx": hashlib.sha256(open(os.path.join(out, "sdn", "sdn.onnx"), "rb").read()).hexdigest()}
    json.dump(spec, open(os.path.join(out, "sdn", "sdn.json"), "w"), indent=1)
    shutil.copy(os.path.join(ROOT, "deps", "centerface", "centerface.onnx"), os.path.join(out, "centerface32.onnx"))
    to_fp16(os.path.join(out, "centerface32.onnx"), os.path.join(out, "centerface.onnx"))
    os.remove(os.path.join(out, "centerface32.onnx"))

    cap = cv2.VideoCapture(os.path.join(ROOT, "samples", "faces_720p.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    assert ok, "cannot read the sample clip"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    cf32 = ort.InferenceSession(os.path.join(ROOT, "deps", "centerface", "centerface.onnx"), so)
    cf16 = ort.InferenceSession(os.path.join(out, "centerface.onnx"), so)
    x = cv2.resize(frame, (640, 360))[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    x = np.pad(x, ((0, 0), (0, 0), (0, 24), (0, 0)))  # to a multiple of 32, as the runtime pads
    name = cf32.get_inputs()[0].name
    h32, h16 = cf32.run(None, {name: x})[0], cf16.run(None, {name: x})[0]
    p32, p16 = peaks(h32), peaks(h16)
    print(f"centerface: heat map max difference {np.abs(h32 - h16).max():.4f}; faces found, float32 {len(p32)}, "
          f"float16 {len(p16)}, at the same place {len(p32 & p16)}")
    sdn32 = ort.InferenceSession(os.path.join(sdn_dir, "sdn.onnx"), so)
    sdn16 = ort.InferenceSession(os.path.join(out, "sdn", "sdn.onnx"), so)
    crops = []
    for (y, x0) in sorted(p32):  # a 128 crop around each face centre (heat map stride 4, frame scale 2)
        cy, cx = y * 4 * 2, x0 * 4 * 2
        c = frame[max(0, cy - 128):cy + 128, max(0, cx - 128):cx + 128]
        crops.append(cv2.resize(c, (128, 128))[:, :, ::-1].transpose(2, 0, 1))
    img = np.stack(crops).astype(np.float32) / 127.5 - 1
    rng = np.random.RandomState(1)
    f = {"image": img, "key": np.sign(rng.randn(len(img), 128)).astype(np.float32),
         "attributes": np.zeros((len(img), 6), np.float32)}
    d = np.abs(sdn32.run(None, f)[0] - sdn16.run(None, f)[0]) * 127.5
    print(f"sdn: {len(img)} face crops, largest difference {d.max():.2f} and mean {d.mean():.3f} grey levels")


if __name__ == "__main__":
    main()
