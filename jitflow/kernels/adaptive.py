"""Per-step thread counts chosen by measurement, so that a plan adapts when the machine gets busy.

A fixed size threshold (`threads.py`) picks the right thread count for an idle machine, but on a loaded
2-core machine every parallel region's barrier can wait a scheduler time slice for a descheduled thread:
measured with four other processes running, a 64x2048x1024 GEMM took 44-64 ms (median) on two OpenBLAS
threads and 8 ms on one, while idle it takes 1.8 ms on two and 3.5 ms on one. No threshold is right for
both, so each big step keeps a `ThreadChoice`: it times its calls, runs with the option whose recent
time per unit of work is lower, and re-tries the other option every `EXPLORE_EVERY` calls to notice
when the load changes.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba

# Calls between two tries of the option not chosen: rare enough that a wrong try costs little on
# average (1/32 of a step's time at most twice over), frequent enough to follow load within a second.
EXPLORE_EVERY = 32
# Tries of each option before the measured means are trusted.
WARMUP_TRIES = 2
# Weight of the newest sample in the running mean of seconds per unit of work.
ALPHA = 0.25

ONE, ALL = 0, 1  # the two options: the calling thread only, or every thread


class ThreadChoice:
    """Chooses, call by call, between running a kernel on one thread and on all threads.

    `prior` is the option a size rule prefers (used until both options have been timed); work is
    given per call so that steps whose sizes vary (batch size) compare like with like.
    """

    __slots__ = ("best", "calls", "mean", "tries")

    def __init__(self, prior: int) -> None:
        self.best = prior
        self.calls = 0
        self.mean = [0.0, 0.0]
        self.tries = [0, 0]

    def pick(self) -> int:
        """The option to run this call with."""
        self.calls += 1
        other = 1 - self.best
        if self.tries[other] < WARMUP_TRIES or self.calls % EXPLORE_EVERY == 0:
            return other
        return self.best

    def record(self, option: int, seconds: float, work: int) -> None:
        """Adds the time of one call that ran with `option` over `work` units."""
        rate = seconds / max(work, 1)
        n = self.tries[option]
        self.mean[option] = rate if n == 0 else self.mean[option] + ALPHA * (rate - self.mean[option])
        self.tries[option] = n + 1
        if min(self.tries) >= WARMUP_TRIES:
            self.best = ONE if self.mean[ONE] < self.mean[ALL] else ALL

    def describe(self) -> str:
        """One line for `explain`: the current choice and the measured means."""
        if min(self.tries) == 0:
            return f"{'1 thread' if self.best == ONE else 'all threads'} (not yet measured)"
        ratio = self.mean[ONE] / self.mean[ALL] if self.mean[ALL] else float("inf")
        return f"{'1 thread' if self.best == ONE else 'all threads'} (1-thread/all-thread time {ratio:.2f})"


def run_with(choice: ThreadChoice, work: int, set_blas: Callable[[int], int] | None,
             fn: Callable[..., Any], *args: Any) -> Any:
    """Calls `fn(*args)` with the thread count `choice` picks (Numba's and OpenBLAS's, both thread-local)."""
    option = choice.pick()
    t0 = time.perf_counter()
    if option == ALL:
        result = fn(*args)
    else:
        prev_numba = numba.get_num_threads()
        numba.set_num_threads(1)
        prev_blas = set_blas(1) if set_blas is not None else 0
        try:
            result = fn(*args)
        finally:
            numba.set_num_threads(prev_numba)
            if set_blas is not None:
                set_blas(prev_blas)
    choice.record(option, time.perf_counter() - t0, work)
    return result
