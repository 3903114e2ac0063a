"""What crosses between host and device in a plan, and how CUDA kernels are keyed and cached."""
from __future__ import annotations

import numpy as np

import jitflow as tf
from jitflow.codegen import cache
from jitflow.compiler import gpu
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import cuda_steps, last_plan, needs_cuda

pytestmark = needs_cuda


def test_chain_of_gpu_clusters_keeps_values_on_the_device(host_copies: list[tuple[int, ...]]) -> None:
    x = tf.placeholder(tf.float32, [4, 6])
    w = tf.placeholder(tf.float32, [6, 5])
    with tf.device("/gpu:0"):
        h = tf.tanh(x * 0.5)  # cluster 1
        m = tf.matmul(h, w)  # CUDA matmul reads h on the device
        s = tf.reduce_sum(m * m, axis=1)  # reduction cluster reads m on the device
        out = s + 1.0  # its consumer cluster
    xv = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    wv = np.linspace(0.5, -0.5, 30, dtype=np.float32).reshape(6, 5)
    with tf.Session() as sess:
        got = sess.run(out, {x: xv, w: wv})
        plan = last_plan(sess)
    assert len(cuda_steps(plan)) >= 3
    assert host_copies == [(4,)], "only the fetched value comes back to the host"
    with tf.Session(config=tf.ConfigProto(jit=False)) as sess:
        assert_same(got, sess.run(out, {x: xv, w: wv}), rtol=1e-5)


def test_value_needed_on_both_sides_is_copied_out_once(host_copies: list[tuple[int, ...]],
                                                       uploads: list[tuple[int, ...]]) -> None:
    x = tf.placeholder(tf.float32, [3, 5])
    with tf.device("/gpu:0"):
        y = tf.exp(x)
        m = tf.reduce_max(y, axis=0)  # fuses with exp: the cluster is then closed
        z = tf.reduce_min(y, axis=0) + m  # a second CUDA step reading y
    with tf.device("/cpu:0"):
        c = tf.reduce_mean(y)  # host reader of y
    xv = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    with tf.Session() as sess:
        zv, cv = sess.run([z, c], {x: xv})
    assert sorted(host_copies) == [(3, 5), (5,)]
    assert uploads == [(3, 5)], "only the feed goes in: the device reader of y reuses its device array"
    assert_same(zv, np.exp(xv).min(axis=0) + np.exp(xv).max(axis=0))
    assert_same(np.float32(cv), np.float32(np.exp(xv).mean()), rtol=1e-6)


def test_uploads_reuse_constants(uploads: list[tuple[int, ...]]) -> None:
    x = tf.placeholder(tf.float32, [8])
    with tf.device("/gpu:0"):
        y = x * tf.constant(np.arange(8, dtype=np.float32)) + 2.0
    with tf.Session() as sess:
        for k in range(3):
            np.testing.assert_allclose(sess.run(y, {x: np.full(8, k, np.float32)}), np.arange(8) * k + 2)
    # the feed every run; each constant once
    assert uploads.count((8,)) == 3 + 1 and len(uploads) == 3 + 2


def test_cuda_kernels_are_keyed_by_target_and_shared() -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    with tf.device("/gpu:0"):
        y = tf.sigmoid(x) * 3.0
    with tf.device("/cpu:0"):
        z = tf.sigmoid(x) * 3.0
    xv = np.ones((2, 3), np.float32)
    cache.reset_stats()
    with tf.Session() as sess:
        sess.run([y, z], {x: xv})
        plan = last_plan(sess)
    entries = {c["backend"]: c for c in plan.report["clusters"]}
    assert set(entries) == {"cpu", "cuda"} and entries["cuda"]["key"] != entries["cpu"]["key"]
    assert entries["cuda"]["source"] in ("compiled", "disk", "memory")
    if gpu.simulated():
        assert gpu.target().arch == "cudasim"
    with tf.Session() as sess:  # a new plan with the same cluster: the kernel comes from memory
        sess.run(y, {x: xv * 2})
        again = last_plan(sess).report["clusters"]
    assert again[0]["key"] == entries["cuda"]["key"] and again[0]["source"] == "memory"
    assert again[0]["backend"] == "cuda"


def test_generated_source_uses_device_math() -> None:
    from jitflow.codegen import cuda as cg
    from jitflow.ir.layout import compute_layout

    x = tf.placeholder(tf.float64, [4])
    with tf.device("/gpu:0"):
        y = tf.floor(tf.sqrt(x)) + tf.exp(x)
    with tf.Session() as sess:
        sess.run(y, {x: np.arange(4.0)})
        step = cuda_steps(last_plan(sess))[0]
    layout, _ = compute_layout([(4,)], (4,))
    src = cg.generate(step.c, layout, cg.Target("sm_80", 256, 16, 4096))
    assert "M.sqrt_f64(" in src and "M.floor_f64(" in src and "M.exp_f64(" in src
    assert "np.sqrt" not in src and "V." not in src and "M.quiet" not in src
    assert "cuda.grid(1)" in src and "cache=True" in src


def test_device_pool_reuses_only_unreferenced_arrays() -> None:
    f32 = np.dtype(np.float32)
    pool = gpu.DevicePool()
    a = pool.get((2, 3), f32)
    b = pool.get((2, 3), f32)
    assert b is not a, "a is still referenced"
    a_id = id(a)
    del a  # the pool still holds it, so the id stays unique
    c = pool.get((2, 3), f32)
    assert id(c) == a_id, "the unreferenced array is reused"
    d = pool.get((2, 3), f32)
    assert d is not b and d is not c, "referenced arrays are never handed out again"
    e = pool.get((5,), f32)
    assert tuple(e.shape) == (5,) and e.dtype == f32
