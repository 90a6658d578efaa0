"""Quantizes CenterFace to int8 for the CPU: weights per channel, activations calibrated on frames.

Usage: deps/venv/bin/python scripts/centerface_int8.py [--reduce-range] CENTERFACE.onnx OUT.onnx FRAMES.rgb...

FRAMES.rgb are raw RGB frames of 640 x 360 (gst-launch-1.0's videoconvert output, back to back),
as fetch-models.sh cuts them from the bundled samples at two frames a second.

Why these choices (measured against the float model with the same decoding, 2026-12-05):
- Static QDQ quantization lets ONNX Runtime's CPU provider run the convolutions as int8 (VNNI
  where the CPU has it): 1.8x faster at 640 x 384 on two cores.
- The first eight nodes (the stem convolution and the first depthwise block) stay float. Their
  activations come straight from 0-255 pixels and span a wide range; in 8 bits they lost a third
  of the faces of a dim 360p clip (Hamilton: 150 of the float model's 228 faces) whatever the
  calibration frames, while with them left float every face of every clip tried was found.
- Calibrated on the clips' frames alone (faces of 60-200 px), the int8 model scored a crowd's
  faces of 8-11 px (MOT20 at 640 px) lower than the float model: 8% of those the float model
  scores 0.3-0.6 by more than 0.05. Mosaics of the frames shrunk 2, 3 and 4 times, put among the
  calibration frames, bring that to none (the 10th percentile of the difference from -0.032 to
  -0.013). What is left is noise of a few hundredths, which the runtime's INT8_SCORE_FACTOR
  (src/faces/detect/centerface.rs) covers.
- The opset is raised to 13 first: the quantizer needs it for per-channel weights.
- `--reduce-range` quantizes the weights to 7 bits, for x86 CPUs with AVX2 and without VNNI.
  There ONNX Runtime's 8-bit kernels add pairs of products in 16 bits, which can saturate with
  8-bit weights: the full-range model left faces of the MOT20 crowd uncovered on a frame or two
  that the float model covers, on a Zen 3 EPYC; the 7-bit model, with the runtime's own score
  factor for it, none (docs/SCALING.md, "A CPU without VNNI").
"""
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

WIDTH, HEIGHT = 640, 360
# Nodes left in float, counted from the input (see above).
FLOAT_STEM_NODES = 8
# Mosaics of each size (2 x 2, 3 x 3, 4 x 4 frames) among the calibration frames (see above).
MOSAICS_PER_SIZE = 3


def mosaic(frames, n):
    """n x n frames, each shrunk n times by block averaging, tiled into one: faces n times
    smaller, as in a crowd."""
    h, w = HEIGHT // n, WIDTH // n
    out = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for k, frame in enumerate(frames[: n * n]):
        small = frame[: h * n, : w * n].astype(np.float32).reshape(h, n, w, n, 3).mean(axis=(1, 3))
        out[(k // n) * h:(k // n + 1) * h, (k % n) * w:(k % n + 1) * w] = small
    return out.round()


def frames(paths):
    """The calibration frames as the runtime feeds them: RGB 0-255 as float, [1, 3, H, W],
    padded to /32. The clips' frames, and mosaics of them."""
    padded_height = -(-HEIGHT // 32) * 32
    whole = [f for path in paths for f in np.fromfile(path, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)]
    mosaics = [mosaic(whole[i::MOSAICS_PER_SIZE], n) for n in (2, 3, 4) for i in range(MOSAICS_PER_SIZE)]
    for frame in whole + mosaics:
        tensor = np.zeros((1, 3, padded_height, WIDTH), np.float32)
        tensor[0, :, :HEIGHT, :] = frame.transpose(2, 0, 1)
        yield tensor


class Frames(CalibrationDataReader):
    def __init__(self, input_name, paths):
        self.feeds = iter([{input_name: t} for t in frames(paths)])

    def get_next(self):
        return next(self.feeds, None)


def main(src, dst, frame_files, reduce_range):
    work = tempfile.mkdtemp()
    converted, staged = os.path.join(work, "opset13.onnx"), os.path.join(work, "staged.onnx")
    onnx.save(version_converter.convert_version(onnx.load(src), 13), converted)
    quant_pre_process(converted, staged, skip_symbolic_shape=True)
    model = onnx.load(staged)
    # The published graph's nodes have no names, and the quantizer excludes nodes by name.
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i:03d}_{node.op_type}"
    onnx.save(model, staged)
    stem = [node.name for node in model.graph.node[:FLOAT_STEM_NODES]]
    reader = Frames(model.graph.input[0].name, frame_files)
    quantize_static(staged, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=stem,
                    reduce_range=reduce_range)
    for path in (converted, staged):
        os.remove(path)
    os.rmdir(work)
    print(f"wrote {dst}")


if __name__ == "__main__":
    args = sys.argv[1:]
    reduce_range = args[:1] == ["--reduce-range"]
    args = args[1:] if reduce_range else args
    if len(args) < 3:
        sys.exit(__doc__)
    main(args[0], args[1], args[2:], reduce_range)
