"""Conv and pooling ops through their fast kernels (compiler/window_steps.py) against the interpreter.

Random shapes, strides, dilations, SAME/VALID/explicit padding, NHWC and NCHW, float32 and float64;
each graph also differentiates the op, so the backprop ops run through their kernels too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitflow as tf
from jitflow.compiler.window_steps import WindowStep
from jitflow.kernels import conv, threads
from tests.compiler.helpers import assert_same, run_both
from tests.compiler.step_checks import check_plan

_SETTINGS = settings(max_examples=30, deadline=None)


def _window_steps(plan: Any) -> list[str]:
    return [s.op.type for s in plan.steps if isinstance(s, WindowStep)]


def _nchw(a: np.ndarray, fmt: str) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if fmt == "NCHW" else a


def _padding(draw: Any, k: tuple[int, int], fmt: str) -> Any:
    kind = draw(st.sampled_from(["SAME", "VALID", "EXPLICIT"]))
    if kind != "EXPLICIT":
        return kind
    t, b, left, r = (draw(st.integers(0, kk)) for kk in (k[0], k[0], k[1], k[1]))
    return [[0, 0], [0, 0], [t, b], [left, r]] if fmt == "NCHW" else [[0, 0], [t, b], [left, r], [0, 0]]


@st.composite
def conv_cases(draw: Any) -> dict[str, Any]:
    """A random conv2d: input, filter, strides, dilations, padding, format, dtype."""
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c, o = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 9), (1, 9), (1, 6), (1, 5)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (1, 1) if max(s) > 1 else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = _padding(draw, k, fmt)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    f = rng.standard_normal((*k, c, o)).astype(dt)
    return {"x": _nchw(x, fmt), "f": f, "strides": s, "dilations": d, "padding": pad, "fmt": fmt, "rng": rng}


def _conv_graph(case: dict[str, Any]) -> list[Any]:
    x, f = tf.constant(case["x"]), tf.constant(case["f"])
    y = tf.nn.conv2d(x, f, strides=list(case["strides"]), padding=case["padding"], data_format=case["fmt"],
                     dilations=list(case["dilations"]))
    r = tf.constant(case["rng"].standard_normal(y.shape.as_list()).astype(case["x"].dtype))
    return [y, *tf.gradients(tf.reduce_sum(y * r), [x, f])]


def _compare(fetches: list[Any], rtol: float | None = None) -> Any:
    got, want, plan = run_both(fetches)
    for i, (a, b) in enumerate(zip(got, want)):
        tol = rtol if rtol is not None else (2e-4 if np.asarray(a).dtype == np.float32 else 1e-11)
        scale = float(np.max(np.abs(b))) if np.size(b) else 1.0
        assert_same(a, b, rtol=tol, atol=tol * scale, what=f"output {i}")
    return plan


def _output_is_empty(case: dict[str, Any]) -> bool:
    with tf.Graph().as_default():
        try:
            y = tf.nn.conv2d(tf.constant(case["x"]), tf.constant(case["f"]), strides=list(case["strides"]),
                             padding=case["padding"], data_format=case["fmt"], dilations=list(case["dilations"]))
        except ValueError:  # VALID (or explicit) window larger than the padded input
            return True
        return 0 in y.shape.as_list()


@_SETTINGS
@given(conv_cases())
def test_conv_and_its_gradients_match_the_interpreter(case: dict[str, Any]) -> None:
    assume(not _output_is_empty(case))
    with tf.Graph().as_default():
        plan = _compare(_conv_graph(case))
    assert sorted(_window_steps(plan)) == ["Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"]


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("c", [1, 8])
def test_chunked_patches_match_the_interpreter(monkeypatch: pytest.MonkeyPatch, c: int, parallel: bool) -> None:
    """Tiny chunks: several im2col/GEMM rounds per batch (c = 8), and the direct kernels for c = 1;
    on both cores (thresholds 0: each thread takes chunks as it is free) and on the calling thread only
    (thresholds above any work: one chunk after another)."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv, "WORKER_CHUNK_BYTES", 1)
    monkeypatch.setattr(threads, "PARALLEL_ELEMENTS", 0 if parallel else 1 << 60)
    monkeypatch.setattr(threads, "PARALLEL_MACS", 0 if parallel else 1 << 60)
    rng = np.random.default_rng(c)
    case = {"x": rng.standard_normal((5, 7, 6, c)).astype(np.float32),
            "f": rng.standard_normal((3, 3, c, 4)).astype(np.float32), "strides": (1, 1), "dilations": (1, 1),
            "padding": "SAME", "fmt": "NHWC", "rng": rng}
    with tf.Graph().as_default():
        plan = _compare(_conv_graph(case))
    sources = " ".join(e["source"] for e in plan.report["clusters"])
    assert ("direct" in sources) == (c == 1) and ("im2col+gemm" in sources) == (c != 1)


@st.composite
def pool_cases(draw: Any) -> dict[str, Any]:
    """A random max/avg pool, with ties (small integers) or NaNs in the input sometimes."""
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 9), (1, 9), (1, 5)))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = draw(st.sampled_from(["SAME", "VALID"]))
    assume(pad == "SAME" or (h >= k[0] and w >= k[1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    values = draw(st.sampled_from(["normal", "ties", "nan"]))
    x = rng.integers(-2, 3, (n, h, w, c)).astype(dt) if values == "ties" else rng.standard_normal((n, h, w, c))
    x = x.astype(dt)
    if values == "nan":
        x.reshape(-1)[rng.integers(0, x.size)] = np.nan
    return {"x": _nchw(x, fmt), "k": k, "s": s, "pad": pad, "fmt": fmt, "rng": rng,
            "kind": draw(st.sampled_from(["max", "avg"]))}


@_SETTINGS
@given(pool_cases())
def test_pooling_and_its_gradient_match_the_interpreter(case: dict[str, Any]) -> None:
    with tf.Graph().as_default():
        x = tf.constant(case["x"])
        fn = tf.nn.max_pool if case["kind"] == "max" else tf.nn.avg_pool
        y = fn(x, [1, *case["k"], 1] if case["fmt"] == "NHWC" else [1, 1, *case["k"]],
               [1, *case["s"], 1] if case["fmt"] == "NHWC" else [1, 1, *case["s"]], case["pad"],
               data_format=case["fmt"])
        r = tf.constant(case["rng"].standard_normal(y.shape.as_list()).astype(case["x"].dtype))
        plan = _compare([y, tf.gradients(tf.reduce_sum(y * r), x)[0]])
    want = {"max": ["MaxPool", "MaxPoolGrad"], "avg": ["AvgPool", "AvgPoolGrad"]}[case["kind"]]
    assert sorted(_window_steps(plan)) == want


def test_runtime_shapes_raise_the_interpreters_errors() -> None:
    """Shapes known only at run time: a mismatch raises InvalidArgumentError, as interpreted."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32)
        f = tf.placeholder(tf.float32)
        y = tf.nn.conv2d(x, f, [1, 1, 1, 1], "VALID")
        with tf.Session() as sess:
            good = sess.run(y, {x: np.ones((1, 4, 4, 2)), f: np.ones((3, 3, 2, 1))})
            assert good.shape == (1, 2, 2, 1) and np.all(good == 18)
            with pytest.raises(tf.errors.InvalidArgumentError, match="depth"):
                sess.run(y, {x: np.ones((1, 4, 4, 2)), f: np.ones((3, 3, 3, 1))})
            with pytest.raises(tf.errors.InvalidArgumentError, match="negative"):
                sess.run(y, {x: np.ones((1, 2, 2, 2)), f: np.ones((3, 3, 2, 1))})


@pytest.mark.parametrize("build, message", [
    (lambda: tf.nn.conv2d(tf.zeros([1, 8, 8, 3]), tf.zeros([3, 3, 4, 5]), [1, 1, 1, 1], "SAME"),
     r"Depth of input \(3\) is not a multiple of input depth of filter \(4\)"),
    (lambda: tf.nn.conv2d(tf.zeros([1, 8, 8, 3]), tf.zeros([3, 3, 3, 5]), [1, 0, 0, 1], "SAME"),
     "Stride must be > 0, but got 0"),
    (lambda: tf.nn.conv2d(tf.zeros([1, 8, 8, 3]), tf.zeros([3, 3, 3, 5]), [1, 1, 1, 1], "FOO"),
     "Attr 'padding' of 'Conv2D' Op passed string 'FOO' not in"),
    (lambda: tf.nn.conv2d(tf.zeros([1, 2, 2, 3]), tf.zeros([3, 3, 3, 5]), [1, 1, 1, 1], "VALID"),
     "Negative dimension size caused by subtracting 3 from 2"),
    (lambda: tf.nn.max_pool(tf.zeros([1, 2, 2, 3]), [1, 3, 3, 1], [1, 1, 1, 1], "VALID"),
     "Negative dimension size caused by subtracting 3 from 2"),
    (lambda: tf.nn.max_pool(tf.zeros([1, 4, 4, 3]), [1, 2, 2, 1], [1, 0, 0, 1], "VALID"),
     "Stride must be > 0, but got 0"),
])
def test_bad_input_raises_tfs_errors_at_build_time(build: Any, message: str) -> None:
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
        build()


def test_explain_names_the_kernel() -> None:
    with tf.Graph().as_default():
        x = tf.constant(np.ones((2, 6, 6, 5), np.float32))
        y = tf.nn.max_pool(tf.nn.conv2d(x, tf.ones([3, 3, 5, 4]), [1, 1, 1, 1], "SAME"), 2, 2, "VALID")
        z = tf.nn.conv2d(y, tf.ones([2, 2, 4, 3]), [1, 1, 1, 1], "SAME")
        with tf.Session() as sess:
            sess.run(z)
        text = str(tf.explain(z))
    assert "kernels/conv: im2col+gemm" in text and "kernels/pool" in text and "kernels/conv: direct" in text


def test_thread_settings_are_restored() -> None:
    import numba

    before = numba.get_num_threads()
    with threads.threads_for(1, 1) as n:
        assert n == 1 and numba.get_num_threads() == 1 and threads.numba_threads() == 1
    assert numba.get_num_threads() == before
    with threads.threads_for(1 << 40, 1 << 40) as n:
        assert n == before
    with pytest.raises(KeyError), threads.threads_for(1, 1):  # restored when the block raises, too
        raise KeyError("x")
    assert numba.get_num_threads() == before
    blas = threads._SET_BLAS_LOCAL
    if blas is not None:  # OpenBLAS's count: one thread inside a small GEMM's block, restored after it
        cur = blas(1)  # the setter returns the count it replaces: read it, then put it back
        blas(cur)
        with threads.blas_threads_for(1):
            assert blas(1) == 1
        assert blas(cur) == cur


@pytest.mark.parametrize("relu, fetch_mid", [(True, False), (False, False), (True, True)])
def test_bias_relu_epilogue_matches_the_interpreter(relu: bool, fetch_mid: bool) -> None:
    """Conv2D -> BiasAdd (-> Relu) with variables, trained one step: fused into the conv's output pass
    (the Relu stays out when the BiasAdd's value is fetched); values and updates as interpreted."""
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    results = []
    for jit in (True, False):
        with tf.Graph().as_default():
            x = tf.constant(xv)
            f = tf.Variable(rng.standard_normal((3, 3, 3, 5)).astype(np.float32) if jit else results[0][-2])
            b = tf.Variable(np.linspace(-1, 1, 5, dtype=np.float32))
            pre = tf.nn.bias_add(tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), b)
            y = tf.nn.relu(pre) if relu else pre
            loss = tf.reduce_sum(y * y)
            train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
            fetches = [y, loss, train] + ([pre] if fetch_mid else [])
            with tf.Session(config=tf.ConfigProto(jit=jit)) as sess:
                sess.run(tf.global_variables_initializer())
                f0 = sess.run(f)
                got = sess.run(fetches)
                entries = [e["ops"] for e in sess._plans[next(reversed(sess._plans))].report["clusters"]] \
                    if jit else []
                results.append([got[0], got[1], *sess.run([f, b]), f0, entries])
    fused = [e for e in results[0][-1] if len(e) > 1 and e[0] == "Conv2D"]
    assert fused == [["Conv2D", "BiasAdd"] + (["Relu"] if relu and not fetch_mid else [])]
    for a, w, name in zip(results[0][:4], results[1][:4], ("y", "loss", "f", "b")):
        np.testing.assert_allclose(a, w, rtol=2e-5, atol=2e-5, err_msg=name)


@st.composite
def relu_pool_cases(draw: Any) -> dict[str, Any]:
    """BiasAdd -> Relu -> MaxPool with non-overlapping windows (gaps sometimes), ties and NaNs sometimes."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w, c = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 9), (1, 9), (1, 5)))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (k[0] + draw(st.integers(0, 1)), k[1] + draw(st.integers(0, 1)))
    pad = draw(st.sampled_from(["SAME", "VALID"]))
    assume(pad == "SAME" or (h >= k[0] and w >= k[1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    values = draw(st.sampled_from(["normal", "ties", "nan"]))
    x = (rng.integers(-2, 3, (n, h, w, c)) if values == "ties" else rng.standard_normal((n, h, w, c))).astype(dt)
    if values == "nan":
        x.reshape(-1)[rng.integers(0, x.size)] = np.nan
    return {"x": x, "b": rng.standard_normal(c).astype(dt), "k": k, "s": s, "pad": pad, "rng": rng,
            "bias_grad": draw(st.booleans())}


@_SETTINGS
@given(relu_pool_cases())
def test_max_pool_grad_with_relu_and_bias_gradients_fused(case: dict[str, Any]) -> None:
    """MaxPoolGrad -> ReluGrad (-> the bias gradient): one step, values as interpreted."""
    with tf.Graph().as_default():
        x, b = tf.constant(case["x"]), tf.constant(case["b"])
        act = tf.nn.relu(tf.nn.bias_add(x, b)) if case["bias_grad"] else tf.nn.relu(x)
        y = tf.nn.max_pool(act, [1, *case["k"], 1], [1, *case["s"], 1], case["pad"])
        r = tf.constant(case["rng"].standard_normal(y.shape.as_list()).astype(case["x"].dtype))
        wrt = [x, b] if case["bias_grad"] else [x]
        plan = _compare([y, *tf.gradients(tf.reduce_sum(y * r), wrt)])
    sources = [e["source"] for e in plan.report["clusters"] if "MaxPoolGrad" in e["ops"][0]]
    assert sources == ["kernels/pool: tiled +relu grad" + (" +bias grad" if case["bias_grad"] else "")]
    check_plan(plan)  # the fused step declares the ReluGrad's and the bias gradient's outputs as writes
    fused = [s for s in plan.steps if isinstance(s, WindowStep) and s.op.type == "MaxPoolGrad"]
    assert len(fused) == 1 and len(fused[0].writes) == (2 if case["bias_grad"] else 1)


def test_relu_grad_stays_out_when_its_input_is_fetched() -> None:
    """A fetched MaxPoolGrad value (or a ReLU mask of another tensor) keeps the ops apart."""
    rng = np.random.default_rng(1)
    with tf.Graph().as_default():
        x = tf.constant(rng.standard_normal((2, 6, 6, 3)).astype(np.float32))
        a = tf.nn.relu(x)
        y = tf.nn.max_pool(a, 2, 2, "VALID")
        dx = tf.gradients(tf.reduce_sum(y * y), x)[0]
        pool_grad = dx.op.inputs[0]
        plan = _compare([dx, pool_grad])
    assert ["kernels/pool: tiled"] == [e["source"] for e in plan.report["clusters"] if "MaxPoolGrad" in e["ops"][0]]


@pytest.mark.parametrize("pressure, busy", [("3.50", False), ("91.20", True)])
def test_thread_thresholds_follow_cpu_pressure(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, pressure: str,
                                               busy: bool) -> None:
    """A busy machine (CPU pressure over the bar) keeps mid-sized calls on the calling thread."""
    import numba

    psi = tmp_path / "cpu"
    psi.write_text(f"some avg10={pressure} avg60=1.00 avg300=1.00 total=1\nfull avg10=0.00 avg60=0.00\n")
    monkeypatch.setattr(threads, "_PSI", str(psi))
    monkeypatch.setattr(threads, "_busy", [-1e9, False])
    assert threads.machine_busy() is busy
    mid = threads.PARALLEL_ELEMENTS * 2
    with threads.threads_for(mid) as n:
        assert n == (1 if busy else numba.get_num_threads())
    monkeypatch.setattr(threads, "_PSI", str(tmp_path / "missing"))
    monkeypatch.setattr(threads, "_busy", [-1e9, True])
    assert threads.machine_busy() is False


def test_chunks_on_worker_threads_match_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three conv drivers with chunks handed to two threads give what one thread gives; an error in
    a helper thread's chunk reaches the caller."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: no helper threads")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 6, 5, 3))
    f = rng.standard_normal((3, 2, 3, 4))
    g = conv.ConvGeom(3, 2, 1, 2, 1, 1, 1, 0, 6, 2)
    dy = rng.standard_normal((9, 6, 2, 4))
    res = []
    for chunk, threshold in ((9, 1 << 60), (1, 0)):  # one thread, one chunk; two threads, nine chunks
        monkeypatch.setattr(threads, "PARALLEL_ELEMENTS", threshold)
        out = np.empty((9, 6, 2, 4))
        res.append([conv.conv2d(x, f, g, out, conv.fresh, chunk=chunk).copy(),
                    conv.conv2d_backprop_filter(x, dy, g, np.empty_like(f), conv.fresh, chunk=chunk),
                    conv.conv2d_backprop_input(dy, f, g, np.empty_like(x), conv.fresh, chunk=chunk)])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)

    def bad(w: int, n0: int, n1: int) -> None:
        if n0 == 3:
            raise ValueError("chunk 3")

    with pytest.raises(ValueError, match="chunk 3"):
        threads.run_chunks(8, 1, 2, bad)


@pytest.mark.parametrize("shape", [(1, 28, 28, 32), (2, 7, 9, 5), (3, 6, 4, 1)])
def test_max_pool_2x2_fast_path_equals_the_general_kernel(shape: tuple[int, ...]) -> None:
    """2 x 2 windows at stride 2 without padding take `pool._max_pool_2x2_rows`: the same values as the
    general kernel, NaNs, ties and odd (dropped) last rows and columns included; padded windows do not."""
    from jitflow.kernels import pool

    rng = np.random.default_rng(len(shape) + shape[1])
    x = rng.integers(-2, 3, shape).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, 4)] = np.nan
    oh, ow = shape[1] // 2, shape[2] // 2
    fast, general = (np.full((shape[0], oh, ow, shape[3]), 7.0, np.float32) for _ in range(2))
    pool.max_pool(x, 2, 2, 2, 2, 0, 0, fast)
    pool._max_pool_rows(x, 2, 2, 2, 2, 0, 0, general, 0, shape[0] * oh)
    np.testing.assert_array_equal(fast, general)
    with tf.Graph().as_default():  # SAME on odd sizes pads the last window: the general kernel's case
        y = tf.nn.max_pool(tf.constant(x), 2, 2, "SAME")
        _compare([y])


@st.composite
def conv_pool_cases(draw: Any) -> dict[str, Any]:
    """Conv2D -> BiasAdd (-> Relu) -> MaxPool | AvgPool, for inference: random windows, strides and paddings
    of both, channels for each conv method (direct, Winograd, im2col), float32 and float64."""
    dt = draw(st.sampled_from([np.float32, np.float64]))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 12)), draw(st.integers(3, 12))
    c, o = draw(st.sampled_from([(1, 4), (3, 5), (8, 9), (12, 8)]))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return {"x": rng.standard_normal((n, h, w, c)).astype(dt), "f": rng.standard_normal((*k, c, o)).astype(dt),
            "b": rng.standard_normal(o).astype(dt), "stride": draw(st.integers(1, 2)),
            "padding": draw(st.sampled_from(["SAME", "VALID"])), "relu": draw(st.booleans()),
            "pool": draw(st.sampled_from(["max", "avg"])), "pk": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            "ps": (draw(st.integers(1, 3)), draw(st.integers(1, 3))), "ppad": draw(st.sampled_from(["SAME", "VALID"]))}


@settings(max_examples=40, deadline=None)
@given(conv_pool_cases())
def test_a_pool_after_a_conv_runs_in_the_convs_step(case: dict[str, Any]) -> None:
    """When nothing else reads the conv's (biased, ReLU'd) output, the pooling op runs in the conv's step on
    its output; values as interpreted, one step and one report entry for the four ops."""
    with tf.Graph().as_default():
        s = case["stride"]
        try:
            y = tf.nn.bias_add(tf.nn.conv2d(tf.constant(case["x"]), tf.constant(case["f"]), [1, s, s, 1],
                                            case["padding"]), tf.constant(case["b"]))
            if case["relu"]:
                y = tf.nn.relu(y)
            pool = tf.nn.max_pool if case["pool"] == "max" else tf.nn.avg_pool
            out = pool(y, [1, *case["pk"], 1], [1, *case["ps"], 1], case["ppad"])
        except ValueError:  # a window larger than a VALID input: TF's build-time error, tested elsewhere
            return
        if 0 in out.shape.as_list():
            return
        plan = _compare([out])
    fused = [e for e in plan.report["clusters"] if "Conv2D" in e["ops"]]
    want = ["Conv2D", "BiasAdd"] + (["Relu"] if case["relu"] else []) + [out.op.name]
    assert [e["ops"] for e in fused] == [want] and f"+{case['pool']}pool" in fused[0]["source"]
    assert len([e for e in plan.report["clusters"] if out.op.name in e["ops"]]) == 1


def test_a_pool_whose_input_is_read_elsewhere_is_fused_with_a_second_output() -> None:
    """A gradient reads the pooled ReLU's output in the pool's gradient: the conv's step still pools it, and
    writes the ReLU's output as its second output for the gradients; values as interpreted."""
    rng = np.random.default_rng(4)
    with tf.Graph().as_default():
        x = tf.constant(rng.standard_normal((2, 8, 8, 2)).astype(np.float32))
        f = tf.constant(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
        r = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), tf.constant(np.ones(4, np.float32))))
        loss = tf.reduce_sum(tf.nn.max_pool(r, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"))
        plan = _compare([loss, *tf.gradients(loss, [x, f])])
    entries = [e["ops"] for e in plan.report["clusters"]]
    assert ["Conv2D", "BiasAdd", "Relu", "MaxPool"] in entries and ["MaxPool"] not in entries
    fused = [s for s in plan.steps if getattr(s, "pool_op", None) is not None]
    assert len(fused) == 1 and fused[0].extra_slot >= 0


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(1, 19),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_avg_pool_2x2_fast_paths_equal_the_general_kernels(n: int, h: int, w: int, c: int, dt: Any,
                                                           seed: int) -> None:
    """2 x 2 windows at stride 2 without padding take `pool._avg_pool_2x2_rows` and
    `pool._avg_pool_grad_2x2_rows`: bit for bit the general kernels' results (NaN, -0.0 and odd, dropped last
    rows and columns included)."""
    from jitflow.kernels import pool

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    x.reshape(-1)[rng.integers(0, x.size, 3)] = -0.0
    oh, ow = h // 2, w // 2
    fast, general = (np.full((n, oh, ow, c), 7.0, dt) for _ in range(2))
    pool.avg_pool(x, 2, 2, 2, 2, 0, 0, fast)
    pool._avg_pool_rows(x, 2, 2, 2, 2, 0, 0, general, 0, n * oh)
    np.testing.assert_array_equal(fast.view(f"u{fast.itemsize}"), general.view(f"u{general.itemsize}"))
    dy = rng.standard_normal((n, oh, ow, c)).astype(dt)
    dy.reshape(-1)[rng.integers(0, dy.size, 2)] = -0.0
    dy.reshape(-1)[rng.integers(0, dy.size, 1)] = np.nan
    fast_dx, general_dx = (np.full(x.shape, 7.0, dt) for _ in range(2))
    pool.avg_pool_grad(dy, 2, 2, 2, 2, 0, 0, fast_dx)
    pool._avg_pool_grad_images(dy, 2, 2, 2, 2, 0, 0, general_dx, 0, n)
    np.testing.assert_array_equal(fast_dx.view(f"u{dt().itemsize}"), general_dx.view(f"u{dt().itemsize}"))
