"""ThreadChoice: per-step thread counts chosen by measured time (jitflow/kernels/adaptive.py)."""
from __future__ import annotations

import numba
import numpy as np

import jitflow as tf
from jitflow.kernels import adaptive
from jitflow.kernels.adaptive import ALL, EXPLORE_EVERY, ONE, ThreadChoice, run_with


def _drive(choice: ThreadChoice, seconds: dict[int, float], calls: int, work: int = 100) -> list[int]:
    """Feeds `calls` calls with fixed per-option times; returns the options picked."""
    picked = []
    for _ in range(calls):
        opt = choice.pick()
        picked.append(opt)
        choice.record(opt, seconds[opt], work)
    return picked


def test_tries_both_then_keeps_the_faster() -> None:
    c = ThreadChoice(ALL)
    picked = _drive(c, {ONE: 1.0, ALL: 3.0}, 200)
    assert picked[:2] == [ONE, ONE]  # the option not preferred is timed first
    assert c.best == ONE
    # after warm-up the slower option is only re-tried once every EXPLORE_EVERY calls
    assert picked[10:].count(ALL) <= 200 // EXPLORE_EVERY + 1
    assert "1 thread" in c.describe()


def test_follows_a_change_of_load() -> None:
    c = ThreadChoice(ALL)
    _drive(c, {ONE: 2.0, ALL: 1.0}, 100)
    assert c.best == ALL
    _drive(c, {ONE: 2.0, ALL: 10.0}, 4 * EXPLORE_EVERY)  # the machine got busy: two threads now slow
    assert c.best == ONE
    _drive(c, {ONE: 2.0, ALL: 1.0}, 8 * EXPLORE_EVERY)  # and idle again
    assert c.best == ALL


def test_compares_time_per_unit_of_work() -> None:
    c = ThreadChoice(ALL)
    for _ in range(10):
        opt = c.pick()
        # one thread gets small calls, all threads big ones: per unit of work all threads are faster
        c.record(opt, 1.0 if opt == ONE else 4.0, 10 if opt == ONE else 100)
    assert c.best == ALL


def test_run_with_restores_thread_counts() -> None:
    c = ThreadChoice(ALL)
    before = numba.get_num_threads()
    blas_calls: list[int] = []

    def set_blas(n: int) -> int:
        blas_calls.append(n)
        return 7

    seen = [run_with(c, 1, set_blas, numba.get_num_threads) for _ in range(4)]
    assert seen[:2] == [1, 1] and numba.get_num_threads() == before
    assert blas_calls[:2] == [1, 7]  # set to one thread, then back to what it was


def test_matmul_step_results_do_not_depend_on_the_choice(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(adaptive, "EXPLORE_EVERY", 2)  # alternate options as often as possible
    rng = np.random.RandomState(0)
    a = rng.rand(64, 256).astype(np.float32)
    b = rng.rand(256, 512).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 256])
    y = tf.matmul(x, tf.constant(b))
    with tf.Session() as sess:
        outs = [sess.run(y, {x: a}) for _ in range(8)]
    for out in outs:
        np.testing.assert_allclose(out, a @ b, rtol=1e-5)
