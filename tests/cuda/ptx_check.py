"""Compiles generated CUDA kernels to PTX for sm_80 and sm_90 without a GPU (needs NVVM, not a driver).

Run as a script (the simulator must be off): prints "OK <label>" per kernel, "FAIL <label>: <error>",
or "UNAVAILABLE <why>" when this machine cannot compile CUDA code at all. `test_cuda_codegen.py` runs it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import jitflow as tf  # noqa: E402
from jitflow.codegen import cuda as cg  # noqa: E402
from jitflow.compiler import lower  # noqa: E402
from jitflow.ir.layout import broadcast_shape, compute_layout  # noqa: E402

TARGET = cg.Target("sm_80", 256, 16, 4096)
CCS = ((8, 0), (9, 0))  # every kernel is compiled for each of these


def _kernels(source: str) -> list[tuple[Any, Any]]:
    """(python function, signature) of every kernel the module defines (nothing is compiled)."""
    from numba import cuda

    found: list[tuple[Any, Any]] = []
    real = cuda.jit

    def recording(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("device"):
            return real(*args, **kwargs)
        return lambda fn: found.append((fn, args[0])) or fn

    cuda.jit = recording
    try:
        exec(compile(source, "<kernel>", "exec"), {"__name__": "_ptx_check"})  # noqa: S102 - our own codegen
    finally:
        cuda.jit = real
    return found


def compile_all(source: str, label: str) -> bool:
    from numba import cuda

    ok = True
    for fn, sig in _kernels(source):
        for cc in CCS:
            try:
                cuda.compile_ptx(fn, sig.args, cc=cc)
                print(f"OK {label}:{fn.__name__} sm_{cc[0]}{cc[1]}")
            except Exception as e:  # noqa: BLE001 - reported line by line
                print(f"FAIL {label}:{fn.__name__} sm_{cc[0]}{cc[1]}: {type(e).__name__}: {e}")
                ok = False
    return ok


def _cluster_steps(fetches: Any, feed: dict) -> list[Any]:
    """The CPU plan's cluster steps (built, not run: only the CUDA sources are compiled here)."""
    from jitflow.compiler.plan import build_plan

    lower._warm = lambda step: None  # no CPU kernels needed
    flat = fetches if isinstance(fetches, list) else [fetches]
    plan = build_plan(flat, list(feed), lower.lower)
    return [st for st in plan.steps if isinstance(st, lower.ClusterStep)]


def _shape(st: Any, inp: Any, feed: dict, override: dict) -> tuple[int, ...]:
    if inp.tensor in override:
        return tuple(override[inp.tensor])
    if inp.tensor in feed:
        return tuple(np.shape(feed[inp.tensor]))
    dims = inp.tensor.shape if inp.tensor is not None else st.var_shapes[inp.var]
    return tuple(dims.as_list())


def check_graph(label: str, build: Callable[[], tuple[Any, dict]]) -> bool:
    tf.reset_default_graph()
    fetches, feed = build()
    ok = True
    for st in _cluster_steps(fetches, feed):
        shapes = [_shape(st, i, feed, {}) for i in st.c.inputs]
        space = broadcast_shape(shapes)
        red = st.c.reduction()
        layout, _ = compute_layout(shapes, space, lower.reduce_axes(red, len(space)) if red is not None else None)
        ok &= compile_all(cg.generate(st.c, layout, TARGET), label + ":" + st.c.ops[-1].type)
    return ok


def _math() -> tuple[Any, dict]:
    x = tf.placeholder(tf.float32, [4, 7])
    fs = [tf.abs, tf.sign, tf.sqrt, tf.rsqrt, tf.exp, tf.log, tf.log1p, tf.expm1, tf.sin, tf.tanh, tf.sigmoid,
          tf.floor, tf.round, tf.is_inf, tf.is_finite, tf.nn.relu, tf.nn.elu, tf.nn.softplus]
    y = tf.placeholder(tf.float64, [7])
    more = [tf.floormod(y, 1.5), tf.floordiv(y, 2.0), tf.pow(y, y), tf.cast(y, tf.int32), tf.ceil(y)]
    i = tf.placeholder(tf.int32, [7])
    ints = [tf.floordiv(i, i + 1), tf.floormod(i, 3), tf.maximum(i, 2)]
    return [f(x) for f in fs] + more + ints, {x: np.ones((4, 7), np.float32), y: np.ones(7), i: np.ones(7, np.int32)}


def _adam() -> tuple[Any, dict]:
    x = tf.placeholder(tf.float32, [6, 4])
    w = tf.Variable(np.ones((4, 3), np.float32))
    b = tf.Variable(np.zeros(3, np.float32))
    loss = tf.reduce_mean(tf.square(tf.tanh(tf.matmul(x, w) + b))) + tf.cast(tf.reduce_all(x > 0.0), tf.float32)
    return tf.train.AdamOptimizer(0.01).minimize(loss), {x: np.ones((6, 4), np.float32)}


def check_fused_matmul() -> bool:
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [5, 6])
    b = tf.placeholder(tf.float32, [3])
    mm = tf.matmul(x, tf.constant(np.ones((6, 3), np.float32)))
    feed = {x: np.ones((5, 6), np.float32), b: np.ones(3, np.float32)}
    ok = compile_all(cg.generate_matmul("float64", True, True, TARGET), "matmul")
    ok &= compile_all(cg.generate_sparse_xent("float32", "int64", TARGET), "xent")
    for st in _cluster_steps(tf.nn.relu(mm + b) * 2.0, feed):
        k = next(j for j, inp in enumerate(st.c.inputs) if inp.tensor is mm)
        shapes = [_shape(st, inp, feed, {mm: (5, 3)}) for inp in st.c.inputs]
        layout, _ = compute_layout(shapes, broadcast_shape(shapes))
        ok &= compile_all(cg.generate_matmul("float32", False, False, TARGET, st.c, layout, k, False), "fused")
    return ok


def main() -> int:
    try:
        from numba import cuda, types

        def probe(a):  # type: ignore[no-untyped-def]
            a[0] = 1

        cuda.compile_ptx(probe, (types.float32[:],), cc=(8, 0))
    except Exception as e:  # noqa: BLE001 - no NVVM/NVRTC: nothing to check here
        print(f"UNAVAILABLE {type(e).__name__}: {e}")
        return 0
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = (8, 0)

    # device functions compile for the current device: without a GPU, pretend one of the kernels' target
    dispatcher.get_current_device = lambda: _Device()  # type: ignore[attr-defined]
    ok = check_graph("math", _math) & check_graph("adam", _adam)
    ok &= check_fused_matmul()
    from ptx_check_conv import check_conv  # the conv, pooling and BiasAddGrad kernels

    ok &= check_conv(compile_all, TARGET)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
