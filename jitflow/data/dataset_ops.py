"""`tf.data.Dataset`: the base class, its element signature, and the methods that build pipelines.

A Dataset is a Python description of a pipeline. Tensors it takes from the graph (placeholders fed at
initialization, constants) are its captures: the iterator's initializer op takes them as inputs, so
they are evaluated in the session run that initializes the iterator. Running a dataset is a chain of
Python generators over flat lists of NumPy arrays (one per component), see `Env` and `_iterate`.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.data import structure
from jitflow.framework.graph import Tensor
from jitflow.framework.tensor_shape import TensorShape

Element = list  # one element: a flat list of arrays, one per component


class Env:
    """The run-time state of one initialized iterator in one session."""

    def __init__(self, ctx: Any, values: dict[Tensor, Any]) -> None:
        # weak: a worker thread must not keep a dropped, unclosed session alive (it stops instead)
        self._ctx = weakref.ref(ctx)
        self.values = values
        self.stop = threading.Event()
        self.state: dict[Any, Any] = {}  # per-dataset state (shuffle epochs, cache contents)
        self.threads: list[threading.Thread] = []

    @property
    def ctx(self) -> Any:
        ctx = self._ctx()
        if ctx is None:
            raise RuntimeError("Attempted to use a closed Session.")
        return ctx

    def gone(self) -> bool:
        """Whether the session is closed or no longer exists (workers then stop)."""
        ctx = self._ctx()
        return self.stop.is_set() or ctx is None or bool(getattr(ctx, "_closed", False))

    def captured(self, tensors: list[Tensor]) -> list[Any]:
        return [self.values[t] for t in tensors]

    def close(self) -> None:
        """Stops the worker threads of this iterator (prefetch, parallel map) and waits for them."""
        self.stop.set()
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
        self.threads = []


class Signature:
    """`output_types` / `output_shapes` / `output_classes` of a structure of tensors (datasets, iterators)."""

    _structure: Any = None
    _types: list[dtypes.DType]
    _shapes: list[TensorShape]

    @property
    def output_types(self) -> Any:
        return structure.pack_as(self._structure, self._types)

    @property
    def output_shapes(self) -> Any:
        return structure.pack_as(self._structure, self._shapes)

    @property
    def output_classes(self) -> Any:
        return structure.pack_as(self._structure, [Tensor] * len(self._types))


class Dataset(Signature):
    """A sequence of elements, each a structure of tensors with fixed dtypes and compatible shapes."""

    # -- signature ----------------------------------------------------------------------------------
    def _set_signature(self, struct: Any, types: list[dtypes.DType], shapes: list[TensorShape]) -> None:
        self._structure = structure.map_structure(lambda _: None, struct)
        self._types = list(types)
        self._shapes = list(shapes)

    def _copy_signature(self, other: Dataset) -> None:
        self._set_signature(other._structure, other._types, other._shapes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} shapes: {self.output_shapes}, types: {self.output_types}>"

    # -- graph plumbing ------------------------------------------------------------------------------
    def _children(self) -> list[Dataset]:
        return []

    def _own_captures(self) -> list[Tensor]:
        return []

    def _captures(self) -> list[Tensor]:
        """Every graph tensor the pipeline needs, evaluated when its iterator is initialized."""
        out = list(self._own_captures())
        for c in self._children():
            out.extend(c._captures())
        return list(dict.fromkeys(out))

    def _iterate(self, env: Env) -> Iterator[Element]:
        raise NotImplementedError

    def __iter__(self) -> Any:
        raise RuntimeError("`tf.data.Dataset` only supports Python-style iteration in eager mode; use an "
                           "iterator (`make_one_shot_iterator()`) and `get_next()` in graph mode.")

    # -- sources -----------------------------------------------------------------------------------------
    @staticmethod
    def from_tensors(tensors: Any) -> Dataset:
        """A dataset of one element: `tensors`."""
        from jitflow.data.sources import TensorDataset

        return TensorDataset(tensors)

    @staticmethod
    def from_tensor_slices(tensors: Any) -> Dataset:
        """A dataset of the slices of `tensors` along their first dimension."""
        from jitflow.data.sources import TensorSliceDataset

        return TensorSliceDataset(tensors)

    @staticmethod
    def from_generator(generator: Any, output_types: Any, output_shapes: Any = None, args: Any = None) -> Dataset:
        """A dataset of the elements `generator(*args)` yields (checked against types and shapes)."""
        from jitflow.data.sources import GeneratorDataset

        return GeneratorDataset(generator, output_types, output_shapes, args)

    @staticmethod
    def range(*args: Any) -> Dataset:
        """`range(stop)`, `range(start, stop[, step])` as int64 scalars."""
        from jitflow.data.sources import RangeDataset

        return RangeDataset(*args)

    @staticmethod
    def zip(datasets: Any) -> Dataset:
        """Elements of a (nest of) datasets side by side; ends with the shortest."""
        from jitflow.data.sources import ZipDataset

        return ZipDataset(datasets)

    @staticmethod
    def list_files(file_pattern: Any, shuffle: bool | None = None, seed: Any = None) -> Dataset:
        """The names of the files matching `file_pattern` (glob), shuffled unless `shuffle=False`."""
        from jitflow.data.readers import ListFilesDataset

        ds: Dataset = ListFilesDataset(file_pattern)
        return ds.shuffle(1 << 20, seed=seed) if shuffle is None or shuffle else ds

    def shard(self, num_shards: Any, index: Any) -> Dataset:
        """Every `num_shards`-th element, starting at `index`."""
        from jitflow.data.transforms import ShardDataset

        return ShardDataset(self, num_shards, index)

    def concatenate(self, dataset: Dataset) -> Dataset:
        """This dataset's elements, then `dataset`'s."""
        from jitflow.data.sources import ConcatenateDataset

        return ConcatenateDataset(self, dataset)

    # -- transformations --------------------------------------------------------------------------------
    def map(self, map_func: Any, num_parallel_calls: Any = None) -> Dataset:
        """`map_func` applied to every element (in order, on `num_parallel_calls` threads)."""
        from jitflow.data.transforms import MapDataset

        return MapDataset(self, map_func, num_parallel_calls)

    def filter(self, predicate: Any) -> Dataset:
        """The elements for which `predicate` is True."""
        from jitflow.data.transforms import FilterDataset

        return FilterDataset(self, predicate)

    def flat_map(self, map_func: Any) -> Dataset:
        """The elements of the datasets `map_func` returns for each element, one dataset after another."""
        from jitflow.data.transforms import InterleaveDataset

        return InterleaveDataset(self, map_func, 1, 1, "flat_map")

    def interleave(self, map_func: Any, cycle_length: Any = None, block_length: Any = 1,
                   num_parallel_calls: Any = None) -> Dataset:
        """Elements of `cycle_length` datasets from `map_func`, `block_length` at a time from each."""
        from jitflow.data.transforms import InterleaveDataset

        return InterleaveDataset(self, map_func, cycle_length, block_length, "interleave")

    def batch(self, batch_size: Any, drop_remainder: bool = False) -> Dataset:
        """Consecutive elements stacked `batch_size` at a time."""
        from jitflow.data.batching import BatchDataset

        return BatchDataset(self, batch_size, drop_remainder)

    def padded_batch(self, batch_size: Any, padded_shapes: Any, padding_values: Any = None,
                     drop_remainder: bool = False) -> Dataset:
        """Consecutive elements padded to `padded_shapes` (None: the batch's longest) and stacked."""
        from jitflow.data.batching import PaddedBatchDataset

        return PaddedBatchDataset(self, batch_size, padded_shapes, padding_values, drop_remainder)

    def unbatch(self) -> Dataset:
        """Splits every element along its first dimension."""
        from jitflow.data.batching import UnbatchDataset

        return UnbatchDataset(self)

    def shuffle(self, buffer_size: Any, seed: Any = None, reshuffle_each_iteration: bool | None = None) -> Dataset:
        """Elements drawn at random from a buffer of `buffer_size` (see `transforms.ShuffleDataset`)."""
        from jitflow.data.transforms import ShuffleDataset

        return ShuffleDataset(self, buffer_size, seed, True if reshuffle_each_iteration is None
                              else reshuffle_each_iteration)

    def repeat(self, count: Any = None) -> Dataset:
        """The dataset `count` times (forever when None or -1)."""
        from jitflow.data.transforms import RepeatDataset

        return RepeatDataset(self, count)

    def take(self, count: Any) -> Dataset:
        """The first `count` elements (all when -1)."""
        from jitflow.data.transforms import TakeDataset

        return TakeDataset(self, count)

    def skip(self, count: Any) -> Dataset:
        """All but the first `count` elements (none when -1)."""
        from jitflow.data.transforms import SkipDataset

        return SkipDataset(self, count)

    def cache(self, filename: Any = "") -> Dataset:
        """Elements recorded on the first pass and replayed afterwards (kept in memory)."""
        from jitflow.data.transforms import CacheDataset

        return CacheDataset(self, filename)

    def prefetch(self, buffer_size: Any) -> Dataset:
        """Up to `buffer_size` elements produced ahead on a worker thread."""
        from jitflow.data.prefetch import PrefetchDataset

        return PrefetchDataset(self, buffer_size)

    def apply(self, transformation_func: Any) -> Dataset:
        """`transformation_func(self)`, which must return a Dataset."""
        res = transformation_func(self)
        if not isinstance(res, Dataset):
            raise TypeError("`transformation_func` must return a Dataset.")
        return res

    def with_options(self, options: Any) -> Dataset:
        """Options tune TF's runtime; jitflow's has none to set."""
        return self

    # -- iterators --------------------------------------------------------------------------------------
    def make_one_shot_iterator(self) -> Any:
        """An iterator initialized on first use, that cannot be re-initialized."""
        from jitflow.data.iterator_ops import Iterator as It

        return It._one_shot(self)

    def make_initializable_iterator(self, shared_name: str | None = None) -> Any:
        """An iterator with an `initializer` op to run (with feeds) before `get_next()`."""
        from jitflow.data.iterator_ops import Iterator as It

        return It._initializable(self, shared_name)


def as_int(value: Any, what: str) -> Any:
    """A Python int from a Python/NumPy value, or the Tensor itself (captured, read at initialization)."""
    if isinstance(value, Tensor):
        return value
    try:
        return int(np.asarray(value))
    except (TypeError, ValueError):
        raise TypeError(f"`{what}` must be an integer scalar, got {value!r}") from None


def read_int(env: Env, value: Any) -> int:
    """The value of an `as_int` argument in a running pipeline."""
    return int(env.values[value]) if isinstance(value, Tensor) else int(value)


def tensor_captures(*values: Any) -> list[Tensor]:
    return [v for v in values if isinstance(v, Tensor)]
