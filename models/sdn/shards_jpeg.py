"""Pack the uint8 .npy shards of models/sdn/data as JPEG (quality 95) parts small enough to travel
(each part < --max-mib, default 45 MiB), and unpack them back into .npy shards on the other side.

  python models/sdn/shards_jpeg.py pack   --data models/sdn/data --out models/sdn/data/parts
  python models/sdn/shards_jpeg.py unpack --parts models/sdn/data/parts --data models/sdn/data

`pack --subset-mib M` packs a sample of about M MiB instead (in parts of at most --max-mib), for a
GPU lease too short to carry everything: every training identity keeps some images (the classifier's identity head
must keep its classes), the UTKFace crops fill the rest, and a few held-out crops come along for
the training log's evaluation batch.

The unpacked crops differ from the originals by one JPEG q95 round trip (mean abs ~1/255), which
only matters for training; labels.npz travels unchanged inside part 0.
"""
import argparse
import io
import os

import cv2
import numpy as np


def encode(img):
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return enc.tobytes()


def pack_subset(data, out, mib, max_mib, seed=0):
    """Parts of at most `max_mib` MiB, about `mib` MiB in all; labels.npz rewritten for the sample
    (rows renumbered into shard 0, so that unpack needs no special case) and kept in part 0."""
    os.makedirs(out, exist_ok=True)
    lab = dict(np.load(os.path.join(data, "labels.npz")))
    arrs = {}

    def img(i):
        s = int(lab["shard"][i])
        if s not in arrs:
            arrs[s] = np.load(os.path.join(data, f"shard_{s:03d}.npy"), mmap_mode="r")
        return arrs[s][int(lab["index"][i])]

    rng = np.random.RandomState(seed)
    split, ident = lab["split"], lab["identity"]
    train_ids = sorted(set(int(v) for v in ident[(split == 0) & (ident >= 0)]))
    by_id = {v: list(rng.permutation(np.nonzero((split == 0) & (ident == v))[0])) for v in train_ids}
    # round robin over identities, interleaved with unlabelled (UTKFace) crops, until the budget
    others = list(rng.permutation(np.nonzero((split == 0) & (ident < 0))[0]))
    held = list(rng.permutation(np.nonzero(split == 1)[0])[:64])
    order = list(held)
    while any(by_id.values()) or others:
        for v in train_ids:
            if by_id[v]:
                order.append(by_id[v].pop())
            if others:
                order.append(others.pop())
    rows, blobs, size = [], [], 0
    for i in order:
        b = encode(img(i))
        if size + len(b) > mib * 2**20:
            break
        rows.append(i)
        blobs.append(b)
        size += len(b)
    rows = np.array(rows)
    sub = {k: (v[rows] if getattr(v, "ndim", 0) >= 1 and len(v) == len(split) else v) for k, v in lab.items()}
    sub["shard"] = np.zeros(len(rows), np.int32)
    sub["index"] = np.arange(len(rows), dtype=np.int32)
    buf = io.BytesIO()
    np.savez(buf, **sub)
    names = [f"shard_000.npy:{k}" for k in range(len(rows))]
    part = write_parts(out, names, blobs, max_mib, np.frombuffer(buf.getvalue(), np.uint8))
    kept = set(int(v) for v in sub["identity"][(sub["split"] == 0) & (sub["identity"] >= 0)])
    print(f"subset: {len(rows)} of {len(split)} crops, {size / 2**20:.1f} MiB in {part} parts; training identities kept "
          f"{len(kept)} of {len(train_ids)}; held-out {int((sub['split'] == 1).sum())}")


def write_parts(out, names, blobs, max_mib, labels_npz):
    """Writes the encoded crops as part_NNN.npz files of at most `max_mib` MiB each (a crop
    larger than that gets a part of its own), labels.npz's bytes in part 0; returns the count."""
    part, start = 0, 0
    while start < len(blobs):
        end, size = start + 1, len(blobs[start])
        while end < len(blobs) and size + len(blobs[end]) <= max_mib * 2**20:
            size += len(blobs[end])
            end += 1
        extra = {"labels_npz": labels_npz} if part == 0 else {}
        np.savez(os.path.join(out, f"part_{part:03d}.npz"), names=np.array(names[start:end]),
                 lens=np.array([len(b) for b in blobs[start:end]], np.int64),
                 bytes=np.frombuffer(b"".join(blobs[start:end]), np.uint8), **extra)
        print(f"part {part}: {end - start} crops, {size / 2**20:.1f} MiB", flush=True)
        part, start = part + 1, end
    return part


def pack(data, out, max_mib):
    os.makedirs(out, exist_ok=True)
    names, blobs = [], []
    for s in sorted(f for f in os.listdir(data) if f.startswith("shard_") and f.endswith(".npy")):
        arr = np.load(os.path.join(data, s), mmap_mode="r")
        for i in range(len(arr)):
            blobs.append(encode(arr[i]))
            names.append(f"{s}:{i}")
    with open(os.path.join(data, "labels.npz"), "rb") as f:
        labels = f.read()
    write_parts(out, names, blobs, max_mib, np.frombuffer(labels, np.uint8))
    print(f"{len(names)} crops packed")


def unpack(parts, data):
    os.makedirs(data, exist_ok=True)
    shards = {}
    for p in sorted(f for f in os.listdir(parts) if f.startswith("part_")):
        z = np.load(os.path.join(parts, p))
        if "labels_npz" in z:
            with open(os.path.join(data, "labels.npz"), "wb") as f:
                f.write(z["labels_npz"].tobytes())
        off = 0
        raw = z["bytes"]
        for name, ln in zip(z["names"], z["lens"]):
            s, i = str(name).split(":")
            img = cv2.imdecode(raw[off:off + ln], cv2.IMREAD_COLOR)[:, :, ::-1]
            off += ln
            shards.setdefault(s, {})[int(i)] = img
    for s, d in shards.items():
        np.save(os.path.join(data, s), np.stack([d[i] for i in range(len(d))]))
    print(f"unpacked {sum(len(d) for d in shards.values())} crops into {len(shards)} shards in {data}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["pack", "unpack"])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "data", "parts"))
    ap.add_argument("--parts", default=os.path.join(here, "data", "parts"))
    ap.add_argument("--max-mib", type=float, default=45)
    ap.add_argument("--subset-mib", type=float, default=0, help="pack a sample this large (in parts of at most --max-mib)")
    a = ap.parse_args()
    if a.cmd == "pack" and a.subset_mib:
        pack_subset(a.data, a.out, a.subset_mib, a.max_mib)
    elif a.cmd == "pack":
        pack(a.data, a.out, a.max_mib)
    else:
        unpack(a.parts, a.data)


if __name__ == "__main__":
    main()
