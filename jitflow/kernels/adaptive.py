"""Per-step thread counts chosen by measurement, so that a plan adapts when the machine gets busy.

A fixed size threshold (`threads.py`) picks the right thread count for an idle machine, but on a loaded
2-core machine every parallel region's barrier can wait a scheduler time slice for a descheduled thread:
measured with four other processes running, a 64x2048x1024 GEMM took 44-64 ms (median) on two OpenBLAS
threads and 8 ms on one, while idle it takes 1.8 ms on two and 3.5 ms on one. No threshold is right for
both, so each big step keeps a `ThreadChoice`. It runs on all threads while their time per unit of work
stays near the best it has seen; once that time doubles (other processes took the cores) it tries
one thread, keeps whichever is faster by a clear margin, and while on one thread re-tries all threads
every `EXPLORE_EVERY` calls to notice when the machine is free again. On an idle machine nothing is
explored, so nothing is lost there.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jitflow.kernels import threads

# Calls between two tries of all threads while one thread is chosen.
EXPLORE_EVERY = 32
# Samples of each option (after its first call, which pays page faults and is not counted) before the
# means are compared.
WARMUP_TRIES = 2
# Weight of the newest sample in the running mean of seconds per unit of work.
ALPHA = 0.25
# All threads count as slowed down when their running mean exceeds its lowest value by this factor (on
# a loaded machine two-thread calls slowed by 5-20x; an idle machine's noise stays well below 2x).
SLOWDOWN = 2.0
# The option not in use must be this much faster to be switched to (noise must not flip the choice).
MARGIN = 0.8

ONE, ALL = 0, 1  # the two options: the calling thread only, or every thread


class ThreadChoice:
    """Chooses, call by call, between running a kernel on one thread and on all threads.

    Starts with `prior` (the option a size rule prefers). Work is given per call so that steps whose
    sizes vary (batch size) compare like with like.
    """

    __slots__ = ("best", "calls", "fastest", "mean", "tries")

    def __init__(self, prior: int) -> None:
        self.best = prior
        self.calls = 0
        self.mean = [0.0, 0.0]
        self.tries = [0, 0]  # calls timed per option, the uncounted first one included
        self.fastest = float("inf")  # the lowest running mean of all threads (robust to one fast call)

    def pick(self) -> int:
        """The option to run this call with."""
        self.calls += 1
        if self.best == ONE:
            return ALL if self.tries[ALL] <= WARMUP_TRIES or self.calls % EXPLORE_EVERY == 0 else ONE
        slowed = self.tries[ALL] > WARMUP_TRIES and self.mean[ALL] > SLOWDOWN * self.fastest
        if slowed and (self.tries[ONE] <= WARMUP_TRIES or self.calls % EXPLORE_EVERY == 0):
            return ONE  # the cores look taken: time one thread
        return ALL

    def record(self, option: int, seconds: float, work: int) -> None:
        """Adds the time of one call that ran with `option` over `work` units."""
        n = self.tries[option]
        self.tries[option] = n + 1
        if n == 0:
            return  # the first call of each option pays page faults and first-use costs
        rate = seconds / max(work, 1)
        self.mean[option] = rate if n == 1 else self.mean[option] + ALPHA * (rate - self.mean[option])
        if option == ALL and n > WARMUP_TRIES:
            self.fastest = min(self.fastest, self.mean[ALL])
        if min(self.tries) > WARMUP_TRIES:
            other = 1 - self.best
            if self.mean[other] < MARGIN * self.mean[self.best]:
                self.best = other


def run_with(choice: ThreadChoice, work: int, set_blas: Callable[[int], int] | None,
             fn: Callable[..., Any], *args: Any) -> Any:
    """Calls `fn(*args)` with the thread count `choice` picks (Numba's for this thread; OpenBLAS's, which is
    process-wide, restored when the call ends)."""
    option = choice.pick()
    t0 = time.perf_counter()
    if option == ALL:
        result = fn(*args)
    else:
        prev_numba = threads.numba_threads()
        threads.set_numba_threads(1)
        prev_blas = set_blas(1) if set_blas is not None else 0
        try:
            result = fn(*args)
        finally:
            threads.set_numba_threads(prev_numba)
            if set_blas is not None:
                set_blas(prev_blas)
    choice.record(option, time.perf_counter() - t0, work)
    return result
