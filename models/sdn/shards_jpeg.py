"""Pack the uint8 .npy shards of models/sdn/data as JPEG (quality 95) parts small enough to travel
(each part < --max-mib, default 45 MiB), and unpack them back into .npy shards on the other side.

  python models/sdn/shards_jpeg.py pack   --data models/sdn/data --out models/sdn/data/parts
  python models/sdn/shards_jpeg.py unpack --parts models/sdn/data/parts --data models/sdn/data

The unpacked crops differ from the originals by one JPEG q95 round trip (mean abs ~1/255), which
only matters for training; labels.npz travels unchanged inside part 0.
"""
import argparse
import io
import os

import cv2
import numpy as np


def pack(data, out, max_mib):
    os.makedirs(out, exist_ok=True)
    lab = np.load(os.path.join(data, "labels.npz"))
    shards = sorted(f for f in os.listdir(data) if f.startswith("shard_") and f.endswith(".npy"))
    part, blobs, names, size = 0, [], [], 0

    def flush():
        nonlocal part, blobs, names, size
        if not blobs:
            return
        extra = {}
        if part == 0:
            with open(os.path.join(data, "labels.npz"), "rb") as f:
                extra["labels_npz"] = np.frombuffer(f.read(), np.uint8)
        lens = np.array([len(b) for b in blobs], np.int64)
        np.savez(os.path.join(out, f"part_{part:03d}.npz"), names=np.array(names), lens=lens,
                 bytes=np.frombuffer(b"".join(blobs), np.uint8), **extra)
        print(f"part {part}: {len(blobs)} crops, {size / 2**20:.1f} MiB", flush=True)
        part, blobs, names, size = part + 1, [], [], 0

    for s in shards:
        arr = np.load(os.path.join(data, s), mmap_mode="r")
        for i in range(len(arr)):
            ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(arr[i][:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
            b = enc.tobytes()
            if size + len(b) > max_mib * 2**20:
                flush()
            blobs.append(b)
            names.append(f"{s}:{i}")
            size += len(b)
    flush()
    print(f"{len(lab['files'])} crops in labels.npz")


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
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.data, a.out, a.max_mib)
    else:
        unpack(a.parts, a.data)


if __name__ == "__main__":
    main()
