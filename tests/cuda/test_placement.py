"""Device placement: /gpu:N on CUDA when present; soft placement to the CPU, strict placement errors."""
from __future__ import annotations

import numpy as np
import pytest

import jitflow as tf
from jitflow.compiler import gpu, placement
from tests.compiler.helpers import assert_same
from tests.cuda.helpers import backends, cuda_steps, last_plan, needs_cuda


@pytest.mark.parametrize("spec,want", [("/gpu:0", 0), ("/GPU:2", 2), ("/device:GPU:1", 1),
                                       ("/job:localhost/replica:0/task:0/device:GPU:3", 3), ("/cpu:0", None),
                                       ("/device:CPU:0", None), ("", None)])
def test_requested_gpu(spec: str, want: int | None) -> None:
    with tf.device(spec):
        a = tf.constant(1.0) + 1.0
    assert placement.requested_gpu(a.op) == want


def _graph(device: str) -> tuple[tf.Tensor, tf.Tensor, np.ndarray]:
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    with tf.device(device):
        y = tf.exp(x * 0.5) - 1.0
    return x, y, np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without numba-cuda or a GPU."""
    monkeypatch.setattr(placement, "gpu_count", lambda: 0)
    monkeypatch.setattr(gpu.runtime, "gpu_count", lambda: 0)


def test_soft_placement_without_gpu_runs_on_cpu(no_gpu: None, capsys: pytest.CaptureFixture[str]) -> None:
    x, y, xv = _graph("/gpu:0")
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=True)
    with tf.Session(config=config) as sess:
        got = sess.run(y, {x: xv})
        plan = last_plan(sess)
    assert_same(got, np.exp(xv * np.float32(0.5)) - np.float32(1.0))
    assert backends(plan) == ["cpu"] and not cuda_steps(plan)
    out = capsys.readouterr().out
    assert f"{y.op.name}: (Sub): /job:localhost/replica:0/task:0/device:CPU:0" in out
    assert tf.explain(y, {x: xv}).clusters[0]["backend"] == "cpu"


@pytest.mark.parametrize("device", ["/gpu:0", "/device:GPU:0"])
def test_strict_placement_without_gpu_names_op_and_device(no_gpu: None, device: str) -> None:
    x, y, xv = _graph(device)
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            sess.run(y, {x: xv})
    msg = str(info.value)
    assert "Cannot assign a device for operation" in msg and "/device:GPU:0" in msg
    op = info.value.op
    assert op is not None and op.name in msg and placement.requested_gpu(op) == 0


@needs_cuda
def test_gpu_zero_runs_on_cuda_and_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    x, y, xv = _graph("/gpu:0")
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False, log_device_placement=True)) as sess:
        got = sess.run(y, {x: xv})
        plan = last_plan(sess)
    with tf.Session(config=tf.ConfigProto(jit=False)) as sess:
        want = sess.run(y, {x: xv})
    assert_same(got, want)
    assert backends(plan) == ["cuda"] and len(cuda_steps(plan)) == 1
    assert "(Exp): /job:localhost/replica:0/task:0/device:GPU:0" in capsys.readouterr().out
    report = tf.explain(y, {x: xv}).to_dict()
    assert [c["backend"] for c in report["clusters"]] == ["cuda"]
    assert {"mul", "Exp", "sub"} <= set(report["clusters"][0]["ops"])


@needs_cuda
def test_missing_gpu_index_soft_and_strict() -> None:
    n = placement.gpu_count()
    x, y, xv = _graph(f"/gpu:{n}")
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=True)) as sess:
        got = sess.run(y, {x: xv})
        assert backends(last_plan(sess)) == ["cpu"]
    assert_same(got, np.exp(xv * np.float32(0.5)) - np.float32(1.0))
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"GPU:{n}"):
            sess.run(y, {x: xv})


@needs_cuda
def test_cpu_and_gpu_ops_in_one_graph() -> None:
    x = tf.placeholder(tf.float32, [3, 4])
    with tf.device("/cpu:0"):
        a = tf.sqrt(tf.abs(x)) + 1.0
    with tf.device("/gpu:0"):
        b = tf.reduce_sum(a * a, axis=1)
    with tf.device("/cpu:0"):
        c = b * 2.0
    xv = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    with tf.Session() as sess:
        got = sess.run([a, c], {x: xv})
        plan = last_plan(sess)
    with tf.Session(config=tf.ConfigProto(jit=False)) as sess:
        want = sess.run([a, c], {x: xv})
    assert sorted(backends(plan)) == ["cpu", "cpu", "cuda"]
    assert_same(got[0], want[0])
    assert_same(got[1], want[1], rtol=1e-5)


@needs_cuda
def test_gpu_n_runs_with_device_n_current(monkeypatch: pytest.MonkeyPatch) -> None:
    # the simulator has one device: a stand-in list of two GPUs records which device each step asks for
    gpu.target()  # fixed before the stand-in replaces the device list
    api = gpu.cuda_api()
    asked: list[int] = []

    class TwoGpus:
        def __getitem__(self, i: int) -> object:
            asked.append(i)
            return api.gpus[0]

        def __len__(self) -> int:
            return 2

    class Api:
        gpus = TwoGpus()

        def __getattr__(self, name: str) -> object:
            return getattr(api, name)

    monkeypatch.setattr(gpu.runtime, "cuda_api", lambda: Api())
    monkeypatch.setattr(gpu.runtime, "gpu_count", lambda: 2)
    monkeypatch.setattr(placement, "gpu_count", lambda: 2)
    monkeypatch.setattr(gpu.runtime, "_multi_device", False)
    x = tf.placeholder(tf.float32, [3, 4])
    with tf.device("/gpu:1"):
        w = tf.Variable(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2))
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w)))
        train = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
    with tf.device("/gpu:0"):
        out = tf.exp(w * 0.5)
    xv = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    res = []
    for jit in (True, False):
        with tf.Session(config=tf.ConfigProto(jit=jit, allow_soft_placement=False)) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train, {x: xv})
            res.append(sess.run([loss, out], {x: xv}))
            if jit:
                wrapped = [s for s in last_plan(sess).steps if isinstance(s, gpu.OnDevice)]
    assert asked and set(asked) == {1} and wrapped and all(s.device == 1 for s in wrapped)
    for g, want in zip(*res):
        assert_same(g, want, rtol=1e-5)


@needs_cuda
def test_cuda_steps_compile_their_predicted_kernels_for_explain() -> None:
    x = tf.placeholder(tf.float32, [None, 3])
    with tf.device("/gpu:0"):
        y = tf.reduce_sum(tf.tanh(x) * 2.0, axis=1)
    from jitflow.compiler.lower import lower
    from jitflow.compiler.plan import build_plan

    plan = build_plan([y], [x], lower)
    steps = [s for s in plan.steps if isinstance(s, gpu.CudaClusterStep)]
    assert len(steps) == 1 and steps[0].report["source"] == "deferred"
    steps[0].compile_predicted()
    assert steps[0].report["source"] in ("compiled", "memory", "disk") and len(steps[0].report["key"]) == 64
