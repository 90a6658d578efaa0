#!/usr/bin/env python3
"""docs/sdn_example.png: the public-domain astronaut photo (samples/astronaut.jpg) through the
shipped SDN with the faceveil CLI: original | password A | password B | restored with A |
restored with a wrong password | A with smiling=2 (restored with A and smiling=2).

  python3 scripts/sdn_example.py [--variant restorable] [--model DIR --out FILE]
  (needs target/release/faceveil and Pillow)

With --variant V the anonymized tiles use that variant and the image is docs/sdn_example_V.png;
--model runs another model folder (a candidate before it ships).
"""
import argparse
import os
import subprocess
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "faceveil")
SRC = os.path.join(ROOT, "samples", "astronaut.jpg")
BOX = (90, 0, 390, 300)  # the face and some context


def cli(*args, password):
    env = dict(os.environ, FACEVEIL_PASSWORD=password)
    subprocess.run([BIN, *args], env=env, check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default=None)
    ap.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    ap.add_argument("--out", default=None, help="default: docs/sdn_example[_VARIANT].png")
    args = ap.parse_args()
    mo = ["--model", args.model] if args.model else []
    va = (["--variant", args.variant] if args.variant else []) + mo
    name = f"sdn_example_{args.variant}.png" if args.variant else "sdn_example.png"
    out_path = args.out or os.path.join(ROOT, "docs", name)
    with tempfile.TemporaryDirectory() as d:
        p = lambda name: os.path.join(d, name)  # noqa: E731
        cli("anonymize", SRC, "-o", p("a.png"), *va, password="password A")
        cli("anonymize", SRC, "-o", p("b.png"), *va, password="password B")
        cli("restore", p("a.png"), "-o", p("ra.png"), *mo, password="password A")
        cli("restore", p("a.png"), "-o", p("rw.png"), *mo, password="not the password")
        cli("anonymize", SRC, "-o", p("s.png"), "--attributes", "smiling=2", *va, password="password A")
        tiles = [Image.open(f).convert("RGB").crop(BOX) for f in
                 (SRC, p("a.png"), p("b.png"), p("ra.png"), p("rw.png"), p("s.png"))]
        w, h = tiles[0].size
        out = Image.new("RGB", (w * len(tiles), h))
        for i, t in enumerate(tiles):
            out.paste(t, (i * w, 0))
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        out.save(out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
