"""ThreadChoice: per-step thread counts chosen by measured time (jitflow/kernels/adaptive.py)."""
from __future__ import annotations

import gc

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


def test_idle_machine_never_tries_one_thread() -> None:
    c = ThreadChoice(ALL)
    picked = _drive(c, {ONE: 1.0, ALL: 0.5}, 500)
    assert picked == [ALL] * 500 and c.best == ALL and c.tries[ONE] == 0


def test_first_call_of_an_option_is_not_counted() -> None:
    c = ThreadChoice(ALL)
    c.record(ALL, 100.0, 100)  # page faults of a first run
    picked = _drive(c, {ONE: 1.0, ALL: 0.5}, 50)
    assert ONE not in picked


def test_follows_a_change_of_load() -> None:
    c = ThreadChoice(ALL)
    _drive(c, {ONE: 2.0, ALL: 1.0}, 100)
    assert c.best == ALL
    picked = _drive(c, {ONE: 2.0, ALL: 10.0}, 40)  # the machine got busy: two threads now slow
    assert c.best == ONE and ONE in picked[:10]
    _drive(c, {ONE: 2.0, ALL: 1.0}, 8 * EXPLORE_EVERY)  # and idle again
    assert c.best == ALL


def test_noise_within_the_margin_does_not_switch() -> None:
    c = ThreadChoice(ALL)
    _drive(c, {ONE: 1.0, ALL: 1.0}, 10)
    picked = _drive(c, {ONE: 2.9, ALL: 3.0}, 40)  # slowed down 3x: one thread gets timed...
    assert picked.count(ONE) >= 3 and c.best == ALL  # ...but is within the 20% margin: no switch
    _drive(c, {ONE: 2.0, ALL: 3.0}, 8 * EXPLORE_EVERY)  # clearly faster: switch
    assert c.best == ONE


def test_prior_one_thread_checks_all_threads_and_compares_per_unit_of_work() -> None:
    c = ThreadChoice(ONE)
    for _ in range(10):
        opt = c.pick()
        # one thread gets small calls, all threads big ones: per unit of work all threads are faster
        c.record(opt, 1.0 if opt == ONE else 4.0, 10 if opt == ONE else 100)
    assert c.best == ALL


def test_run_with_restores_thread_counts() -> None:
    c = ThreadChoice(ONE)
    c.tries, c.mean = [5, 5], [1e-9, 1.0]  # measured: one thread far faster, all threads re-tried rarely
    before = numba.get_num_threads()
    blas_calls: list[int] = []

    def set_blas(n: int) -> int:
        blas_calls.append(n)
        return 7

    seen = [run_with(c, 1, set_blas, numba.get_num_threads) for _ in range(4)]
    assert seen == [1, 1, 1, 1] and numba.get_num_threads() == before
    assert blas_calls[:2] == [1, 7]  # set to one thread, then back to what it was


def test_matmul_step_results_do_not_depend_on_the_choice(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(adaptive, "EXPLORE_EVERY", 2)  # alternate options as often as possible
    monkeypatch.setattr(adaptive, "SLOWDOWN", 0.0)  # all threads always look slowed down: one is tried
    rng = np.random.RandomState(0)
    a = rng.rand(64, 256).astype(np.float32)
    b = rng.rand(256, 512).astype(np.float32)
    x = tf.placeholder(tf.float32, [None, 256])
    y = tf.matmul(x, tf.constant(b))
    with tf.Session() as sess:
        outs = [sess.run(y, {x: a}) for _ in range(12)]
        step_choices = [o for o in gc.get_objects() if type(o) is ThreadChoice and min(o.tries) > 0]
    assert step_choices  # the GEMM ran with both options
    for out in outs:
        np.testing.assert_allclose(out, a @ b, rtol=1e-5)
