"""What a depthwise convolution on the device launches (kernels: `codegen/cuda_depthwise.py`).

`CudaWindowStep` (`compiler/gpu/conv.py`) runs DepthwiseConv2dNative and its two gradients like the
other window ops; this module checks the shapes the kernels need and plans their launch. Anything else
(mismatched channels, a dy that is not the conv's output shape, empty tensors) returns None: the step
then runs the op interpreted, which gives the interpreter's values and errors.
"""
from __future__ import annotations

import numpy as np

from jitflow.codegen import cuda_depthwise as cdw  # through the module: tests stand in for its functions
from jitflow.codegen.cuda_conv import Window
from jitflow.compiler.gpu.conv import Launch
from jitflow.compiler.gpu.runtime import target
from jitflow.framework.graph import Operation
from jitflow.ops import nn_ops as N


def describe(op_type: str) -> str:
    """The kernel a depthwise op runs on the device, as the plan report (and `explain`) shows it."""
    how = {cdw.FORWARD: "per output", cdw.BACKPROP_INPUT: "gather per input",
           cdw.BACKPROP_FILTER: "tap x channel sums"}[op_type]
    return f"codegen/cuda_depthwise: {how}"


def depthwise_launch(op: Operation, fmt: str, shapes: list[tuple[int, ...]], sizes: tuple[int, ...] | None,
                     dt: np.dtype) -> Launch | None:
    """DepthwiseConv2dNative (x, f), its BackpropInput (dy, f; input sizes) or BackpropFilter (x, dy;
    filter sizes): the launch, or None when the kernel does not apply."""
    t = op.type
    if t == cdw.FORWARD:
        xs, fs = N._nhwc_shape(shapes[0], fmt), shapes[1]
    elif sizes is None:
        return None
    elif t == cdw.BACKPROP_INPUT:
        xs, fs = N._nhwc_shape(sizes, fmt), shapes[1]
    else:
        xs, fs = N._nhwc_shape(shapes[0], fmt), sizes
    if len(fs) != 4 or xs[3] != fs[2] or min(xs) <= 0 or min(fs) <= 0:
        return None
    g = N._Geom(xs, fs[0], fs[1], op.attrs)
    if g.oh <= 0 or g.ow <= 0:
        return None
    win = Window(g.h, g.w, xs[3], xs[3] * fs[3], g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph[0], g.pw[0], g.oh,
                 g.ow, fmt)
    ys = N._fmt_shape((xs[0], g.oh, g.ow, win.o), fmt)
    if t == cdw.FORWARD:
        return Launch(win, xs[0], dt, ys)
    if shapes[0 if t == cdw.BACKPROP_INPUT else 1] != ys:
        return None  # dy does not have the conv's output shape: the interpreter's error
    if t == cdw.BACKPROP_INPUT:
        return Launch(win, xs[0], dt, N._fmt_shape(xs, fmt))
    return Launch(win, xs[0], dt, tuple(fs), cdw.depthwise_splits(t, win, xs[0], target()))
