"""Export the trained SDN flow to two ONNX graphs (anonymize = forward, restore = exact inverse),
verify both against torch with onnxruntime, write models/sdn/sdn.json and a small checkpoint.

  python models/sdn/export.py --ckpt models/sdn/runs/fast/ckpt.pt --variant fast
  python models/sdn/export.py --ckpt w.pt --variant fast --name restorable --flow-only

--name lists the graphs in sdn.json under another variant name than the architecture's (the same
architecture trained for another trade-off), in files sdn_NAME.onnx / sdn_NAME_restore.onnx;
--flow-only keeps only the flow's weights in its checkpoint (what the graphs hold; a quarter of
the size).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import SDNFlow, Anonymize, Restore, count_gflops, KEY_BITS, N_ATTR  # noqa: E402


def files(name):
    return ("sdn.onnx", "sdn_restore.onnx") if name == "fast" else (f"sdn_{name}.onnx", f"sdn_{name}_restore.onnx")


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_one(module, path):
    n = 2
    args = (torch.rand(n, 3, 128, 128) * 2 - 1, torch.sign(torch.randn(n, KEY_BITS)), torch.zeros(n, N_ATTR))
    torch.onnx.export(module, args, path, opset_version=17, dynamo=False,
                      input_names=["image", "key", "attributes"], output_names=["image_out"],
                      dynamic_axes={k: {0: "N"} for k in ["image", "key", "attributes", "image_out"]})


def verify(module, path, rng):
    import onnx
    import onnxruntime as ort
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({nd.op_type for nd in m.graph.node})
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for n in (1, 3):
        img = (rng.rand(n, 3, 128, 128) * 2 - 1).astype(np.float32)
        key = rng.choice([-1.0, 1.0], (n, KEY_BITS)).astype(np.float32)
        att = rng.uniform(-2, 2, (n, N_ATTR)).astype(np.float32)
        o = sess.run(["image_out"], {"image": img, "key": key, "attributes": att})[0]
        with torch.no_grad():
            t = module(torch.from_numpy(img), torch.from_numpy(key), torch.from_numpy(att)).numpy()
        worst = max(worst, float(np.abs(o - t).max()))
    return worst, ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "fast", "ckpt.pt"))
    ap.add_argument("--variant", default="fast", choices=["fast", "full"])
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--model-id", default=None, help="the folder's model id (default: sdn-fast-VERSION)")
    ap.add_argument("--name", default=None, help="variant name in sdn.json (default: the architecture)")
    ap.add_argument("--flow-only", action="store_true", help="checkpoint with the flow's weights only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    assert ck["variant"] == args.variant, (ck["variant"], args.variant)
    flow = SDNFlow(args.variant)
    flow.load_state_dict(ck["flow"])
    flow.eval()
    name = args.name or args.variant
    a_path, r_path = [os.path.join(args.out_dir, f) for f in files(name)]
    with open(os.path.join(HERE, "contract.json")) as f:
        c = json.load(f)
    anon, rest = Anonymize(flow).eval(), Restore(flow, c["blend"]).eval()
    export_one(anon, a_path)
    export_one(rest, r_path)
    rng = np.random.RandomState(0)
    da, ops_a = verify(anon, a_path, rng)
    dr, ops_r = verify(rest, r_path, rng)
    print(f"onnxruntime vs torch max abs diff: anonymize {da:.2e}, restore {dr:.2e}")
    print("ops:", ops_a, ops_r)
    assert da < 1e-3 and dr < 1e-3
    # round trip through the two ONNX graphs
    import onnxruntime as ort
    sa = ort.InferenceSession(a_path, providers=["CPUExecutionProvider"])
    sr = ort.InferenceSession(r_path, providers=["CPUExecutionProvider"])
    dpath = os.path.join(HERE, "data", "shard_000.npy")
    if os.path.exists(dpath):  # two real stored face crops (centre 128 of the 144 px store)
        d = np.load(dpath, mmap_mode="r")
        p0 = (d.shape[1] - 128) // 2
        img = (np.array(d[:2, p0:p0 + 128, p0:p0 + 128]).transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)
    else:
        img = (rng.rand(2, 3, 128, 128) * 1.6 - 0.8).astype(np.float32)
    key = rng.choice([-1.0, 1.0], (2, KEY_BITS)).astype(np.float32)
    att = np.zeros((2, N_ATTR), np.float32)
    y = sa.run(None, {"image": img, "key": key, "attributes": att})[0]
    x = sr.run(None, {"image": y, "key": key, "attributes": att})[0]
    print(f"onnx round trip on two face crops: max abs err {np.abs(x - img).max():.2e} "
          f"(mean {np.abs(x - img).mean():.2e}; anonymized values past -1..1 are bent in, not cut, and unbent in the restore)")

    gflops = count_gflops(anon, torch.zeros(1, 3, 128, 128), torch.ones(1, KEY_BITS), torch.zeros(1, N_ATTR))
    jpath = os.path.join(args.out_dir, "sdn.json")
    if os.path.exists(jpath):
        with open(jpath) as f:
            meta = json.load(f)
    else:
        meta = {}
    meta.update({
        "format": "faceveil-sdn", "version": 1,
        "model_id": f"sdn-{meta.get('default_variant', 'fast')}-{args.version}",
        "input_size": 128, "key_bits": KEY_BITS,
        "attributes": c["attributes"], "attribute_range": c["attribute_range"],
        "normalization": "rgb_minus1_1",
        "crop": {k: c["crop"][k] for k in ("detector", "scale", "center_x", "center_y")},
        "blend": c["blend"],
        "default_variant": "fast",
        "inputs": {"image": "image", "key": "key", "attributes": "attributes"}, "output": "image_out",
    })
    meta["model_id"] = args.model_id or f"sdn-fast-{args.version}"
    variants = meta.get("variants", {})
    variants[name] = {"architecture": args.variant, "anonymize": os.path.basename(a_path), "restore": os.path.basename(r_path),
                              "gflops": round(gflops, 4),
                              "trained_steps": int(ck["step"]) + sum(r["steps"] for r in ck.get("lineage", [])),
                              "trained_minutes": round(float(ck["minutes"]) + sum(r["minutes"] for r in ck.get("lineage", [])), 1),
                              "runs": [*ck.get("lineage", []), {"run": ck.get("run", "?"), "steps": int(ck["step"]),
                                                                 "minutes": round(float(ck["minutes"]), 1)}]}
    meta["variants"] = variants
    sh = meta.get("sha256", {})
    sh[os.path.basename(a_path)] = sha256(a_path)
    sh[os.path.basename(r_path)] = sha256(r_path)
    meta["sha256"] = sh
    with open(jpath, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    # small checkpoint (weights only, no optimizer state) for the repository
    os.makedirs(os.path.join(args.out_dir, "checkpoints"), exist_ok=True)
    cp = os.path.join(args.out_dir, "checkpoints", f"sdn_{name}.pt")
    nets = {"flow": ck["flow"]} if args.flow_only else {"flow": ck["flow"], "C": ck["C"], "D": ck["D"]}
    torch.save({**nets, "step": ck["step"], "minutes": ck["minutes"],
                "variant": args.variant, "ids": ck["ids"], "contract": ck["contract"], "run": ck.get("run"),
                "lineage": ck.get("lineage", [])}, cp)
    print(f"wrote {a_path} ({os.path.getsize(a_path) / 1e6:.2f} MB), {r_path} ({os.path.getsize(r_path) / 1e6:.2f} MB), "
          f"{jpath}, {cp} ({os.path.getsize(cp) / 1e6:.1f} MB); gflops {gflops:.3f}; step {ck['step']}")


if __name__ == "__main__":
    main()
