"""Element-wise and reordering transformations: map, filter, flat_map/interleave, shuffle, repeat,
take, skip, cache.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow.data.dataset_ops import Dataset, Element, Env, as_int, read_int, tensor_captures
from jitflow.data.function import TracedFunction, check_output, check_predicate
from jitflow.framework.graph import Tensor
from jitflow.framework.tensor_shape import TensorShape

AUTOTUNE = -1


def _trace(ds: Dataset, fn: Any, what: str, allow_datasets: bool = False,
           batched: bool = False) -> TracedFunction:
    if not callable(fn):
        raise TypeError(f"`{what}` expects a callable, got {fn!r}")
    shapes = [TensorShape([None]).concatenate(s) if batched else s for s in ds._shapes]
    return TracedFunction(fn, ds._structure, ds._types, shapes, what, allow_datasets)


class MapDataset(Dataset):
    """`map`: the traced function applied to every element, in order."""

    def __init__(self, input_ds: Dataset, fn: Any, num_parallel_calls: Any) -> None:
        self._input = input_ds
        self._user_fn = fn
        self._fn = _trace(input_ds, fn, "map")
        self._parallel = 1 if num_parallel_calls is None else int(num_parallel_calls)
        if self._parallel == AUTOTUNE:
            self._parallel = 2
        if self._parallel < 1:
            raise ValueError(f"num_parallel_calls must be positive or AUTOTUNE, got {num_parallel_calls}")
        self._set_signature(self._fn.structure, self._fn.output_types, self._fn.output_shapes)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return list(self._fn.captures)

    def batched_function(self) -> TracedFunction | None:
        """The function traced over a batch when running it once per batch is the same as per element."""
        if not self._fn.elementwise():
            return None
        return _trace(self._input, self._user_fn, "map_batched", batched=True)

    def _iterate(self, env: Env) -> Iterator[Element]:
        fn = self._fn
        captured = env.captured(fn.captures)
        ctx = env.ctx

        def call(el: Element) -> Element:
            return check_output(fn.call(ctx, el, captured), fn)

        if self._parallel > 1:
            from jitflow.data.prefetch import parallel_map

            yield from parallel_map(env, self._input._iterate(env), call, self._parallel)
            return
        for el in self._input._iterate(env):
            yield call(el)


class FilterDataset(Dataset):
    """`filter`: the elements for which the traced predicate is True."""

    def __init__(self, input_ds: Dataset, predicate: Any) -> None:
        self._input = input_ds
        self._fn = _trace(input_ds, predicate, "filter")
        check_predicate(self._fn)
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return list(self._fn.captures)

    def _iterate(self, env: Env) -> Iterator[Element]:
        fn = self._fn
        captured = env.captured(fn.captures)
        for el in self._input._iterate(env):
            if fn.call(env.ctx, el, captured)[0]:
                yield el


class InterleaveDataset(Dataset):
    """`interleave` (and `flat_map`, one at a time): elements of the datasets the function returns."""

    def __init__(self, input_ds: Dataset, fn: Any, cycle_length: Any, block_length: Any, what: str) -> None:
        self._input = input_ds
        self._fn = _trace(input_ds, fn, what, allow_datasets=True)
        inner = self._fn.structure
        if not isinstance(inner, Dataset):
            raise TypeError(f"`{what}`'s function must return a Dataset, got {inner!r}")
        self._inner = inner
        self._cycle = as_int(AUTOTUNE if cycle_length is None else cycle_length, "cycle_length")
        self._block = as_int(block_length, "block_length")
        self._copy_signature(inner)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return list(self._fn.captures) + tensor_captures(self._cycle, self._block)

    def _open(self, env: Env, el: Element, captured: list[Any]) -> Iterator[Element]:
        values = dict(zip(self._fn.outputs, self._fn.call(env.ctx, el, captured)))
        sub = Env(env.ctx, values)
        sub.stop, sub.threads, sub.state = env.stop, env.threads, env.state
        return self._inner._iterate(sub)

    def _iterate(self, env: Env) -> Iterator[Element]:
        captured = env.captured(self._fn.captures)
        cycle = read_int(env, self._cycle)
        cycle = 2 if cycle == AUTOTUNE else cycle
        block = read_int(env, self._block)
        inputs = self._input._iterate(env)
        slots: list[Iterator[Element] | None] = [None] * cycle
        index = taken = n_open = 0
        end_of_input = False
        while not end_of_input or n_open:  # TF's interleave loop, so that the order is TF's
            cur = slots[index]
            if cur is not None:
                el = next(cur, None)
                if el is not None:
                    taken += 1
                    if taken == block:
                        index, taken = (index + 1) % cycle, 0
                    yield el
                    continue
                slots[index] = None
                n_open -= 1
                index, taken = (index + 1) % cycle, 0
            elif not end_of_input:
                nxt = next(inputs, None)
                if nxt is None:
                    end_of_input = True
                else:
                    slots[index] = self._open(env, nxt, captured)
                    n_open += 1
            else:
                index, taken = (index + 1) % cycle, 0


class ShuffleDataset(Dataset):
    """`shuffle`: TF's buffer algorithm (fill `buffer_size`, emit a random buffer slot, refill it).

    With a seed (op or graph level), the order is deterministic: pass k of the iterator (k counts from 0
    and stays 0 without `reshuffle_each_iteration`) takes slot floor(u * n) of its n-element buffer, u
    the next double of NumPy's `default_rng([seed, seed2, k]).random()` (drawn 1024 at a time).
    TensorFlow draws from its own Philox stream, so the order is not TensorFlow's.
    """

    def __init__(self, input_ds: Dataset, buffer_size: Any, seed: Any, reshuffle: bool) -> None:
        from jitflow.ops.random_ops import get_seed

        self._input = input_ds
        self._buffer = as_int(buffer_size, "buffer_size")
        if not isinstance(self._buffer, Tensor) and self._buffer <= 0:
            raise ValueError(f"buffer_size must be greater than zero, got {self._buffer}")
        self._seeds = get_seed(None if seed is None else int(seed))
        self._reshuffle = bool(reshuffle)
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(self._buffer)

    def _rng(self, env: Env) -> np.random.Generator:
        key = ("shuffle-pass", id(self))
        k = env.state.get(key, 0)
        if self._reshuffle:
            env.state[key] = k + 1
        seed, seed2 = self._seeds
        if seed is None:
            return np.random.default_rng()
        return np.random.default_rng([seed, seed2 or 0, k])

    def _iterate(self, env: Env) -> Iterator[Element]:
        size = read_int(env, self._buffer)
        rng = self._rng(env)
        it = self._input._iterate(env)
        buf: list[Element] = []
        for el in it:
            buf.append(el)
            if len(buf) >= size:
                break
        draws, k = rng.random(1024), 0
        while buf:
            if k == 1024:
                draws, k = rng.random(1024), 0
            i = int(draws[k] * len(buf))  # drawn in blocks: one NumPy call per 1024 elements
            k += 1
            out = buf[i]
            nxt = next(it, None)
            if nxt is not None:
                buf[i] = nxt
            else:
                buf[i] = buf[-1]
                buf.pop()
            yield out


class RepeatDataset(Dataset):
    """`repeat`: `count` passes (forever for None or -1; an empty pass ends it)."""

    def __init__(self, input_ds: Dataset, count: Any) -> None:
        self._input = input_ds
        self._count = as_int(-1 if count is None else count, "count")
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(self._count)

    def _iterate(self, env: Env) -> Iterator[Element]:
        count = read_int(env, self._count)
        k = 0
        while count < 0 or k < count:
            empty = True
            for el in self._input._iterate(env):
                empty = False
                yield el
            if empty:
                return
            k += 1


class TakeDataset(Dataset):
    """`take`: the first `count` elements (all for -1)."""

    def __init__(self, input_ds: Dataset, count: Any) -> None:
        self._input = input_ds
        self._count = as_int(count, "count")
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(self._count)

    def _iterate(self, env: Env) -> Iterator[Element]:
        count = read_int(env, self._count)
        if count == 0:
            return
        for i, el in enumerate(self._input._iterate(env)):
            yield el
            if count >= 0 and i + 1 >= count:
                return


class SkipDataset(TakeDataset):
    """`skip`: all but the first `count` elements (nothing for -1)."""

    def _iterate(self, env: Env) -> Iterator[Element]:
        count = read_int(env, self._count)
        if count < 0:
            return
        for i, el in enumerate(self._input._iterate(env)):
            if i >= count:
                yield el


class CacheDataset(Dataset):
    """`cache`: the first complete pass is kept (in memory, also when a filename is given) and replayed."""

    def __init__(self, input_ds: Dataset, filename: Any) -> None:
        self._input = input_ds
        self._copy_signature(input_ds)

    def _children(self) -> list[Dataset]:
        return [self._input]

    def _iterate(self, env: Env) -> Iterator[Element]:
        key = ("cache", id(self))
        cached = env.state.get(key)
        if cached is not None:
            yield from cached
            return
        seen: list[Element] = []
        for el in self._input._iterate(env):
            seen.append(el)
            yield el
        env.state[key] = seen
