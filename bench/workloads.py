"""Workloads W1–W6 of BENCH.md: graph builders, NumPy baselines, sizes, and the W6 child process.

Builders take the TF1-style module as ``tf`` (``jitflow``, or ``tensorflow.compat.v1`` where
TensorFlow is installed), so one piece of code builds the graph for every framework compared.
Nothing here imports jitflow at module level: the W6 child times that import itself.

Run as a script, this module is the W6 child (time to first result in a fresh process)::

    python bench/workloads.py w6 --variant compiled --w2-n 10000000 --w4-batch 256 --repeats 10

It prints one JSON object on its last stdout line.
"""
from __future__ import annotations

import time

_T_START = time.perf_counter()  # the W6 child counts its import time from here, numpy included

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

F32 = np.float32

# -- sizes ------------------------------------------------------------------------------------------------


def quick_mode() -> bool:
    """JITFLOW_BENCH_QUICK=1: small sizes and few rounds, for CI."""
    return os.environ.get("JITFLOW_BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeat counts of one suite run."""

    w2_n: int
    w4_batch: int
    w1_rounds: int
    w1_iterations: int
    w2_rounds: int
    w3_rounds: int
    w4_rounds: int
    w6_rounds: int
    child_repeats: int


def sizes() -> Sizes:
    """The full sizes of BENCH.md, or small ones in quick mode."""
    if quick_mode():
        return Sizes(w2_n=100_000, w4_batch=32, w1_rounds=5, w1_iterations=50, w2_rounds=3, w3_rounds=3,
                     w4_rounds=5, w6_rounds=1, child_repeats=3)
    return Sizes(w2_n=10_000_000, w4_batch=256, w1_rounds=15, w1_iterations=200, w2_rounds=10,
                 w3_rounds=10, w4_rounds=30, w6_rounds=3, child_repeats=10)


# -- frameworks ---------------------------------------------------------------------------------------------


def missing_api(tf: Any, *paths: str) -> list[str]:
    """The dotted attribute paths (``"nn.relu"``) that `tf` lacks."""
    missing = []
    for path in paths:
        obj = tf
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(path)
                break
    return missing


def jitflow_session(tf: Any, graph: Any, variant: str) -> Any:
    """A jitflow session: ``"compiled"`` uses the JIT, ``"interpreted"`` runs every op in NumPy."""
    if variant not in ("compiled", "interpreted"):
        raise ValueError(f"unknown jitflow variant {variant!r}")
    return tf.Session(graph=graph, config=tf.ConfigProto(jit=variant == "compiled"))


def jit_state(sess: Any, variant: str) -> str:
    """What the JIT did for this session's plans: clusters and fallbacks, or why nothing was compiled."""
    if variant != "compiled":
        return "interpreted"
    if os.environ.get("JITFLOW_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return "JITFLOW_JIT=0: ran interpreted"
    if importlib.util.find_spec("jitflow.compiler.lower") is None:
        return "no JIT yet (jitflow.compiler.lower missing): ran interpreted"
    reports = [getattr(p, "report", {}) for p in getattr(sess, "_plans", {}).values()]
    clusters = sum(len(r.get("clusters", ())) for r in reports)
    kinds: dict[str, int] = {}
    for r in reports:
        for f in r.get("fallbacks", ()):
            kind = str(f.get("type", "?")) if isinstance(f, dict) else "?"
            kinds[kind] = kinds.get(kind, 0) + 1
    fallbacks = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(kinds.items()))
    return (f"JIT: {clusters} clusters in {len(reports)} plans; interpreted: "
            f"{fallbacks or 'nothing'}")


def cluster_times(sess: Any) -> list[list[Any]]:
    """[ops (abbreviated), compile seconds, where the kernel came from] of each compiled cluster."""
    out: list[list[Any]] = []
    for plan in getattr(sess, "_plans", {}).values():
        for entry in getattr(plan, "report", {}).get("clusters", ()):
            if not isinstance(entry, dict):
                continue
            ops = [str(o) for o in entry.get("ops", ())]
            name = "+".join(ops[:3]) + (f"+{len(ops) - 3} more" if len(ops) > 3 else "")
            out.append([name, float(entry.get("compile_seconds", 0.0) or 0.0), str(entry.get("source", ""))])
    return out


def first_run(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Calls `fn` (a first ``sess.run``) and says how long it took and where its kernels came from."""
    from jitflow.codegen.cache import cache_stats

    before = cache_stats()
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    after = cache_stats()
    compiled, disk, memory = (after[k] - before[k] for k in ("compiled", "disk_hits", "memory_hits"))
    return result, f"first run {dt:.3g} s (kernels: {compiled} compiled, {disk} from disk, {memory} from memory)"


def tensorflow_v1() -> Any | None:
    """``tensorflow.compat.v1`` where TensorFlow is installed, else None."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    import tensorflow as real_tf  # type: ignore[import-not-found]

    return real_tf.compat.v1


def median_time(fn: Callable[[], Any], repeats: int, iterations: int = 1) -> float:
    """Median seconds of one call of `fn` over `repeats` timings of `iterations` calls."""
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        times.append((time.perf_counter() - t0) / iterations)
    return float(np.median(times))


def interleaved_medians(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns (a, b, a, b, ...) so that a load
    change on the shared machine hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(rounds, 1)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / |ref| (ref is never 0 for W2: exp(-|y|) > 0)."""
    got64, ref64 = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got64.shape != ref64.shape:
        raise AssertionError(f"shape {got64.shape} != reference shape {ref64.shape}")
    return float(np.max(np.abs(got64 - ref64) / np.maximum(np.abs(ref64), np.finfo(np.float32).tiny)))


# -- W1: a*b+1 on two scalar placeholders -------------------------------------------------------------------

W1_A, W1_B = 2.0, 3.0


def build_w1(tf: Any) -> tuple[Any, Any, Any]:
    """``c = a*b + 1`` on scalar float32 placeholders; returns (a, b, c)."""
    a = tf.placeholder(tf.float32, shape=[], name="a")
    b = tf.placeholder(tf.float32, shape=[], name="b")
    return a, b, a * b + 1.0


def w1_numpy(a: np.float32, b: np.float32) -> np.float32:
    """The same expression on NumPy float32 scalars."""
    return a * b + F32(1.0)


# -- W2: the elementwise chain ------------------------------------------------------------------------------


def w2_input(n: int) -> np.ndarray:
    """n float32 values uniform in [-10, 10] (the range vmath_probe.py uses)."""
    return np.random.default_rng(0).uniform(-10.0, 10.0, n).astype(np.float32)


def build_w2(tf: Any) -> tuple[Any, Any]:
    """``y = tanh(1.5x+0.3)*sigmoid(x) - 0.5x²; out = exp(-|y|) + max(y,0)``; returns (x, out)."""
    x = tf.placeholder(tf.float32, shape=[None], name="x")
    y = tf.tanh(1.5 * x + 0.3) * tf.sigmoid(x) - 0.5 * tf.square(x)
    return x, tf.exp(-tf.abs(y)) + tf.maximum(y, 0.0)


class NumpyW2:
    """The chain in NumPy float32 ufuncs, with preallocated temporaries (no allocation per call)."""

    def __init__(self, n: int) -> None:
        self.t = np.empty(n, np.float32)
        self.s = np.empty(n, np.float32)
        self.out = np.empty(n, np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t, s, out = self.t, self.s, self.out
        np.multiply(x, F32(1.5), out=t)
        t += F32(0.3)
        np.tanh(t, out=t)
        np.negative(x, out=s)  # sigmoid(x) = 1 / (1 + exp(-x))
        np.exp(s, out=s)
        s += F32(1.0)
        np.divide(t, s, out=t)
        np.multiply(x, x, out=s)
        s *= F32(0.5)
        t -= s  # t = y
        np.abs(t, out=s)
        np.negative(s, out=s)
        np.exp(s, out=s)
        np.maximum(t, F32(0.0), out=out)
        out += s
        return out


def w2_reference64(x: np.ndarray) -> np.ndarray:
    """The chain in float64: the yardstick for NumPy float32's own error."""
    v = x.astype(np.float64)
    y = np.tanh(1.5 * v + 0.3) / (1.0 + np.exp(-v)) - 0.5 * v * v
    return np.exp(-np.abs(y)) + np.maximum(y, 0.0)


# -- W3: linear regression, one sess.run(train_op) per scalar sample ----------------------------------------

W3_LR = 0.01


def w3_data() -> tuple[np.ndarray, np.ndarray]:
    """The 100 samples of acceptance/a03_linear_regression.py."""
    rng = np.random.RandomState(0)
    train_x = np.linspace(-1, 1, 100)
    return train_x, 3 * train_x + rng.randn(100) * 0.3


def build_w3(tf: Any) -> dict[str, Any]:
    """a03's graph: placeholders X, Y; variables w, b; cost; train (SGD step)."""
    x = tf.placeholder("float")
    y = tf.placeholder("float")
    w = tf.Variable(tf.random_normal([1]), name="weight")
    b = tf.Variable(tf.random_normal([1]), name="bias")
    cost = tf.reduce_mean(tf.square(y - (tf.multiply(x, w) + b)))
    train = tf.train.GradientDescentOptimizer(W3_LR).minimize(cost)
    return {"x": x, "y": y, "w": w, "b": b, "cost": cost, "train": train,
            "init": tf.global_variables_initializer()}


def w3_reference(w: float, b: float, epochs: int) -> tuple[float, float]:
    """`epochs` passes of a03's SGD in float64 Python arithmetic (the yardstick)."""
    for _ in range(epochs):
        for x, y in zip(*w3_data()):
            g = 2.0 * W3_LR * (float(x) * w + b - float(y))
            w, b = w - g * float(x), b - g
    return w, b


class NumpyW3:
    """a03's SGD step by hand on float32 one-element arrays, updated in place."""

    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        self.w = np.array(w, np.float32).reshape(1)
        self.b = np.array(b, np.float32).reshape(1)
        self.lr2 = F32(2 * W3_LR)

    def step(self, x: float, y: float) -> None:
        # cost = (y - (x*w + b))²  →  dcost/db = -2(y - z), dcost/dw = x · dcost/db
        g = (F32(x) * self.w + self.b - F32(y)) * self.lr2
        self.b -= g
        g *= F32(x)
        self.w -= g


# -- W4: MLP 784→512→10, ReLU, sparse softmax cross-entropy, SGD ---------------------------------------------

W4_IN, W4_HIDDEN, W4_OUT, W4_LR = 784, 512, 10, 0.01


def w4_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Glorot-uniform weights and small biases, float32."""
    rng = np.random.default_rng(seed)

    def glorot(n_in: int, n_out: int) -> np.ndarray:
        lim = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-lim, lim, (n_in, n_out)).astype(np.float32)

    return {"w1": glorot(W4_IN, W4_HIDDEN), "b1": rng.uniform(-0.1, 0.1, W4_HIDDEN).astype(np.float32),
            "w2": glorot(W4_HIDDEN, W4_OUT), "b2": rng.uniform(-0.1, 0.1, W4_OUT).astype(np.float32)}


def w4_batches(batch: int, count: int = 4, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` batches of random inputs in [0, 1) and int32 labels, cycled by the benchmarks."""
    rng = np.random.default_rng(seed)
    return [(rng.random((batch, W4_IN), dtype=np.float32),
             rng.integers(0, W4_OUT, batch).astype(np.int32)) for _ in range(count)]


def build_w4(tf: Any, params: dict[str, np.ndarray], inputs: Any = None) -> dict[str, Any]:
    """The MLP with variables initialized from `params`; returns x, labels, loss, train, init, vars.

    `inputs`, when given, is the (x, labels) pair to train on (an input pipeline's tensors, for W9)."""
    if inputs is not None:
        x, labels = inputs
    else:
        x = tf.placeholder(tf.float32, shape=[None, W4_IN], name="x")
        labels = tf.placeholder(tf.int32, shape=[None], name="labels")
    v = {k: tf.Variable(val, name=k) for k, val in params.items()}
    hidden = tf.nn.relu(tf.matmul(x, v["w1"]) + v["b1"])
    logits = tf.matmul(hidden, v["w2"]) + v["b2"]
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    train = tf.train.GradientDescentOptimizer(W4_LR).minimize(loss)
    return {"x": x, "labels": labels, "loss": loss, "train": train, "vars": v,
            "init": tf.global_variables_initializer()}


class NumpyMLP:
    """One W4 SGD step by hand: forward, backward and update, all buffers preallocated, BLAS GEMMs."""

    def __init__(self, params: dict[str, np.ndarray], batch: int) -> None:
        self.w1, self.b1 = params["w1"].copy(), params["b1"].copy()
        self.w2, self.b2 = params["w2"].copy(), params["b2"].copy()
        self.h = np.empty((batch, W4_HIDDEN), np.float32)
        self.mask = np.empty((batch, W4_HIDDEN), np.bool_)
        self.dh = np.empty((batch, W4_HIDDEN), np.float32)
        self.p = np.empty((batch, W4_OUT), np.float32)
        self.dw1 = np.empty((W4_IN, W4_HIDDEN), np.float32)
        self.dw2 = np.empty((W4_HIDDEN, W4_OUT), np.float32)
        self.rows = np.arange(batch)
        self.batch = batch
        self.lr = F32(W4_LR)

    def step(self, x: np.ndarray, labels: np.ndarray) -> None:
        if x.shape[0] != self.batch:
            raise ValueError(f"batch of {x.shape[0]} rows, buffers for {self.batch}")
        h, p, dh, lr = self.h, self.p, self.dh, self.lr
        np.matmul(x, self.w1, out=h)
        h += self.b1
        np.maximum(h, F32(0.0), out=h)
        np.matmul(h, self.w2, out=p)
        p += self.b2
        p -= p.max(axis=1, keepdims=True)  # stable softmax
        np.exp(p, out=p)
        p *= F32(1.0 / self.batch) / p.sum(axis=1, keepdims=True)
        p[self.rows, labels] -= F32(1.0 / self.batch)  # p is now dloss/dlogits of the mean loss
        np.matmul(h.T, p, out=self.dw2)
        db2 = p.sum(axis=0)
        np.matmul(p, self.w2.T, out=dh)  # uses w2 before its update, as TF does
        np.greater(h, F32(0.0), out=self.mask)
        dh *= self.mask
        np.matmul(x.T, dh, out=self.dw1)
        db1 = dh.sum(axis=0)
        for w, g in ((self.w1, self.dw1), (self.w2, self.dw2)):
            g *= lr
            w -= g
        db1 *= lr
        self.b1 -= db1
        db2 *= lr
        self.b2 -= db2

    def params(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}


def w4_reference(params: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray,
                 steps: int) -> tuple[dict[str, np.ndarray], float]:
    """`steps` SGD steps in plain float64 NumPy (the yardstick); returns the params and the last loss."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    rows = np.arange(x.shape[0])
    xd = x.astype(np.float64)
    loss = float("nan")
    for _ in range(steps):
        h = np.maximum(xd @ p["w1"] + p["b1"], 0.0)
        z = h @ p["w2"] + p["b2"]
        z = z - z.max(axis=1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = float(np.mean(-np.log(prob[rows, labels])))
        dz = prob.copy()
        dz[rows, labels] -= 1.0
        dz /= x.shape[0]
        dh = (dz @ p["w2"].T) * (h > 0)
        grads = {"w1": xd.T @ dh, "b1": dh.sum(0), "w2": h.T @ dz, "b2": dz.sum(0)}
        p = {k: p[k] - W4_LR * grads[k] for k in p}
    return p, loss


def w4_update_error(start: dict[str, np.ndarray], got: dict[str, np.ndarray],
                    ref: dict[str, np.ndarray]) -> float:
    """Largest error of the parameter change (got - start vs ref - start), relative to its size."""
    worst = 0.0
    for k in start:
        d_got = got[k].astype(np.float64) - start[k]
        d_ref = ref[k].astype(np.float64) - start[k]
        worst = max(worst, float(np.max(np.abs(d_got - d_ref)) / max(float(np.max(np.abs(d_ref))), 1e-30)))
    return worst


# -- W6: time to first result in a fresh process --------------------------------------------------------------


@contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - t0


def _w6_numpy(n: int, batch: int, repeats: int) -> dict[str, Any]:
    r: dict[str, float] = {"import_s": time.perf_counter() - _T_START}
    x = w2_input(n)
    (xb, yb), params = w4_batches(batch, 1)[0], w4_params()
    with _timed(r, "w2_first_s"):
        w2 = NumpyW2(n)
        w2(x)
    with _timed(r, "w4_first_s"):
        mlp = NumpyMLP(params, batch)
        mlp.step(xb, yb)
    r["first_result_s"] = r["import_s"] + r["w2_first_s"] + r["w4_first_s"]  # test data excluded
    r["w2_steady_s"] = median_time(lambda: w2(x), repeats)
    r["w4_steady_s"] = median_time(lambda: mlp.step(xb, yb), repeats)
    r["w2_max_rel_err"] = max_rel_err(w2(x), w2_reference64(x))
    check = NumpyMLP(params, batch)
    check.step(xb, yb)
    r["w4_update_err"] = w4_update_error(params, check.params(), w4_reference(params, xb, yb, 1)[0])
    r["jit"] = "numpy"
    return r


def _w6_jitflow(n: int, batch: int, repeats: int) -> dict[str, Any]:
    import jitflow as tf

    r: dict[str, Any] = {"import_s": time.perf_counter() - _T_START}
    x_val = w2_input(n)
    (xb, yb), params = w4_batches(batch, 1)[0], w4_params()
    with _timed(r, "w2_build_s"):
        g2 = tf.Graph()
        with g2.as_default():
            x, out = build_w2(tf)
        s2 = tf.Session(graph=g2)
    with _timed(r, "w2_first_s"):
        got = s2.run(out, {x: x_val})
    with _timed(r, "w4_build_s"):
        g4 = tf.Graph()
        with g4.as_default():
            m = build_w4(tf, params)
        s4 = tf.Session(graph=g4)
    with _timed(r, "w4_init_s"):
        s4.run(m["init"])
    with _timed(r, "w4_first_s"):
        s4.run(m["train"], {m["x"]: xb, m["labels"]: yb})
    r["first_result_s"] = sum(r[k] for k in ("import_s", "w2_build_s", "w2_first_s", "w4_build_s", "w4_init_s",
                                             "w4_first_s"))  # making the test data is excluded
    r["w2_steady_s"] = median_time(lambda: s2.run(out, {x: x_val}), repeats)
    r["w4_steady_s"] = median_time(lambda: s4.run(m["train"], {m["x"]: xb, m["labels"]: yb}), repeats)
    r["w2_max_rel_err"] = max_rel_err(got, NumpyW2(n)(x_val))
    # The check of the first W4 step: a fresh session, one step, against float64 NumPy.
    s_check = tf.Session(graph=g4)
    s_check.run(m["init"])
    s_check.run(m["train"], {m["x"]: xb, m["labels"]: yb})
    ref, _ = w4_reference(params, xb, yb, 1)
    r["w4_update_err"] = w4_update_error(params, s_check.run(m["vars"]), ref)
    from jitflow.codegen.cache import cache_stats

    r["cache"] = cache_stats()
    r["clusters"] = cluster_times(s2) + cluster_times(s4)
    variant = "compiled" if os.environ.get("JITFLOW_JIT", "1") != "0" else "interpreted"
    r["jit"] = f"W2 {jit_state(s2, variant)}; W4 {jit_state(s4, variant)}"
    return r


def w6_main(argv: list[str]) -> int:
    """The W6 child: import, build W2 and W4, first run of each, then steady-state medians; prints JSON."""
    ap = argparse.ArgumentParser(prog="workloads.py w6")
    ap.add_argument("--variant", choices=("numpy", "jitflow"), required=True)
    ap.add_argument("--w2-n", type=int, required=True)
    ap.add_argument("--w4-batch", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    run = _w6_numpy if args.variant == "numpy" else _w6_jitflow
    result = run(args.w2_n, args.w4_batch, args.repeats)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "w6":
        sys.exit("usage: python bench/workloads.py w6 --variant numpy|jitflow --w2-n N --w4-batch B")
    sys.exit(w6_main(sys.argv[2:]))
