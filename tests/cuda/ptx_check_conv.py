"""The conv, pooling and BiasAddGrad kernels of `codegen/cuda_conv.py` for `ptx_check.py` (run from there)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import jitflow as tf
from jitflow.codegen import cuda as cg
from jitflow.codegen import cuda_conv as cc
from jitflow.ir.layout import compute_layout

# strided + SAME-padded, dilated + VALID, and NCHW: the index arithmetic of each form
WINDOWS = [cc.Window(9, 7, 3, 8, 3, 3, 2, 2, 1, 1, 1, 1, 5, 4),
           cc.Window(9, 7, 3, 8, 2, 3, 1, 1, 2, 2, 0, 0, 7, 3),
           cc.Window(9, 7, 3, 8, 3, 3, 1, 1, 1, 1, 1, 1, 9, 7, "NCHW")]
# depthwise (o = c * multiplier): strided + SAME-padded with a multiplier of 2, dilated + VALID in NCHW
DEPTHWISE_WINDOWS = [cc.Window(9, 7, 3, 6, 3, 3, 2, 2, 1, 1, 1, 1, 5, 4),
                     cc.Window(9, 7, 3, 3, 2, 3, 1, 1, 2, 2, 0, 0, 7, 3, "NCHW")]


def check_conv(compile_all: Callable[[str, str], bool], target: cg.Target) -> bool:
    ok = True
    # every op on the first geometry, the GEMMs on the others, float64 once (each compile takes a second)
    for k, g in enumerate(WINDOWS):
        for op_type in cc.GEMMS:
            ok &= compile_all(cc.generate_conv(op_type, g, "float32", target), f"conv{k}:{op_type}:float32")
    for op_type in ("MaxPool", "AvgPool", "MaxPoolGrad", "AvgPoolGrad"):
        ok &= compile_all(cc.generate_pool(op_type, WINDOWS[0], "float32", target), f"pool0:{op_type}:float32")
    ok &= compile_all(cc.generate_conv("Conv2D", WINDOWS[0], "float64", target), "conv0:Conv2D:float64")
    ok &= compile_all(cc.generate_pool("AvgPoolGrad", WINDOWS[2], "float64", target), "pool2:AvgPoolGrad:float64")
    ok &= compile_all(cc.generate_bias_grad("float32", 12, target), "bias_grad12")
    return ok & _check_depthwise(compile_all, target) & _check_fused(compile_all, target) & _check_loop_add()


def _check_depthwise(compile_all: Callable[[str, str], bool], target: cg.Target) -> bool:
    """The three depthwise kernels (`codegen/cuda_depthwise.py`) on both geometries, float64 on the second."""
    from jitflow.codegen import cuda_depthwise as cdw

    ok = True
    for k, (g, dt) in enumerate(zip(DEPTHWISE_WINDOWS, ("float32", "float64"))):
        for op_type in cdw.OPS:
            ok &= compile_all(cdw.generate_depthwise(op_type, g, dt, target), f"depthwise{k}:{op_type}:{dt}")
    return ok


def _check_loop_add() -> bool:
    """The gradient sums of a loop on a GPU (`compiler/gpu/loop_state.add_arrays`)."""
    from numba import cuda, types
    from ptx_check import CCS

    from jitflow.compiler.gpu import loop_state

    ok = True
    for dt in (types.float32, types.float64):
        for cc_ in CCS:
            try:
                cuda.compile_ptx(loop_state.add_arrays, (dt[::1], dt[::1], dt[::1]), cc=cc_)
                print(f"OK loop_add:{dt} sm_{cc_[0]}{cc_[1]}")
            except Exception as e:  # noqa: BLE001 - reported line by line
                print(f"FAIL loop_add:{dt} sm_{cc_[0]}{cc_[1]}: {type(e).__name__}: {e}")
                ok = False
    return ok


def _check_fused(compile_all: Callable[[str, str], bool], target: cg.Target) -> bool:
    """Conv2D with its BiasAdd + Relu cluster as the epilogue, NHWC and NCHW."""
    ok = True
    for g, x_shape, y_shape in [(WINDOWS[0], (2, 9, 7, 3), (2, 5, 4, 8)), (WINDOWS[2], (2, 3, 9, 7), (2, 8, 9, 7))]:
        ok &= _check_fused_one(compile_all, target, g, x_shape, y_shape)
    return ok


def _check_fused_one(compile_all: Callable[[str, str], bool], target: cg.Target, g: cc.Window,
                     x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> bool:
    from ptx_check import _cluster_steps, _shape

    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, x_shape)
    b = tf.placeholder(tf.float32, [8])
    strides = [1, g.sh, g.sw, 1] if g.fmt == "NHWC" else [1, 1, g.sh, g.sw]
    with tf.device("/gpu:0"):  # (a conv on the CPU would take its bias and ReLU into its own step)
        y = tf.nn.conv2d(x, tf.constant(np.ones((3, 3, 3, 8), np.float32)), strides, "SAME", data_format=g.fmt)
        z = tf.nn.relu(tf.nn.bias_add(y, b, data_format=g.fmt))
    feed: dict[Any, Any] = {x: np.ones(x_shape, np.float32), b: np.ones(8, np.float32)}
    ok = True
    for st in _cluster_steps(z, feed):
        k = next(j for j, inp in enumerate(st.c.inputs) if inp.tensor is y)
        shapes = [_shape(st, inp, feed, {y: y_shape}) for inp in st.c.inputs]
        layout, _ = compute_layout(shapes, y_shape)
        src = cc.generate_conv("Conv2D", g, "float32", target, st.c, layout, k)
        ok &= compile_all(src, f"conv_fused_{g.fmt}")
    return ok
