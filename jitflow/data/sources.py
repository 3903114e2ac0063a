"""Source datasets: from_tensors, from_tensor_slices, from_generator, range, zip, concatenate."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.data import structure
from jitflow.data.dataset_ops import Dataset, Element, Env, as_int, read_int, tensor_captures
from jitflow.framework.graph import Tensor
from jitflow.framework.tensor_shape import TensorShape, as_shape, shape_str
from jitflow.ops.constant_op import _python_dtype, to_numpy


def _leaf(x: Any) -> Any:
    """A component: a graph Tensor (captured) or a NumPy array converted as TF converts Python values."""
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "_as_graph_element"):  # a Variable
        from jitflow.ops.constant_op import convert_to_tensor

        return convert_to_tensor(x)
    dt = dtypes.as_dtype(x.dtype) if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind not in "SUO" \
        else _python_dtype(x)
    return to_numpy(x, dt, "a dataset component")


def _leaf_sig(x: Any) -> tuple[dtypes.DType, TensorShape]:
    if isinstance(x, Tensor):
        return x.dtype, x.shape
    return dtypes.as_dtype(x.dtype) if x.dtype.kind != "O" else dtypes.string, TensorShape(x.shape)


def _value(env: Env, x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        v = env.values[x]
        return v if type(v) is np.ndarray else np.asarray(v, dtype=x.dtype.np)
    return x


class TensorDataset(Dataset):
    """`from_tensors`: one element."""

    def __init__(self, tensors: Any) -> None:
        self._leaves = [_leaf(x) for x in structure.flatten(tensors)]
        sigs = [_leaf_sig(x) for x in self._leaves]
        self._set_signature(tensors, [s[0] for s in sigs], [s[1] for s in sigs])

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(*self._leaves)

    def _iterate(self, env: Env) -> Iterator[Element]:
        yield [_value(env, x) for x in self._leaves]


class TensorSliceDataset(TensorDataset):
    """`from_tensor_slices`: the rows of every component, which must have the same first dimension."""

    def __init__(self, tensors: Any) -> None:
        super().__init__(tensors)
        dims: list[int | None] = []
        for s in self._shapes:
            if s.ndims == 0:
                raise ValueError("Shape must be at least rank 1 but is rank 0 for `from_tensor_slices` "
                                 "(every component is sliced along its first dimension).")
            dims.append(None if s.ndims is None else s.as_list()[0])
        known = [d for d in dims if d is not None]
        if any(d != known[0] for d in known):
            raise ValueError(f"Dimensions {known[0]} and {next(d for d in known if d != known[0])} are not "
                             f"compatible: all components of `from_tensor_slices` must have the same size in "
                             f"dimension 0, got shapes {', '.join(str(s) for s in self._shapes)}.")
        self._shapes = [TensorShape(None) if s.ndims is None else TensorShape(s.as_list()[1:])
                        for s in self._shapes]

    def _iterate(self, env: Env) -> Iterator[Element]:
        arrays = [_value(env, x) for x in self._leaves]
        n = len(arrays[0])
        for a in arrays[1:]:
            if len(a) != n:
                raise errors.InvalidArgumentError(
                    None, None, f"All components of `from_tensor_slices` must have the same size in "
                                f"dimension 0, got shapes {', '.join(shape_str(x.shape) for x in arrays)}")
        if len(arrays) == 1:
            a0 = arrays[0]
            for i in range(n):
                yield [a0[i]]
            return
        for i in range(n):
            yield [a[i] for a in arrays]


class RangeDataset(Dataset):
    """`range`: int64 scalars."""

    def __init__(self, *args: Any) -> None:
        if not 1 <= len(args) <= 3:
            raise ValueError(f"Invalid arguments to RangeDataset: {args}")
        vals = [as_int(a, "range argument") for a in args]
        if len(vals) == 1:
            vals = [0, vals[0], 1]
        elif len(vals) == 2:
            vals.append(1)
        if not isinstance(vals[2], Tensor) and vals[2] == 0:
            raise errors.InvalidArgumentError(None, None, "step must be a non-zero integer.")
        self._args = vals
        self._set_signature(None, [dtypes.int64], [as_shape([])])

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(*self._args)

    def _iterate(self, env: Env) -> Iterator[Element]:
        start, stop, step = (read_int(env, a) for a in self._args)
        for i in range(start, stop, step):
            yield [np.int64(i)]


class ZipDataset(Dataset):
    """`zip`: the elements of a nest of datasets side by side."""

    def __init__(self, datasets: Any) -> None:
        flat = structure.flatten(datasets)
        if not flat or not all(isinstance(d, Dataset) for d in flat):
            raise TypeError("The argument to `Dataset.zip()` must be a (nested) structure of `Dataset` objects.")
        self._datasets: list[Dataset] = flat
        self._set_signature(_unwrap(_zip_structure(datasets)), [t for d in flat for t in d._types],
                            [s for d in flat for s in d._shapes])

    def _children(self) -> list[Dataset]:
        return list(self._datasets)

    def _iterate(self, env: Env) -> Iterator[Element]:
        its = [d._iterate(env) for d in self._datasets]
        while True:
            out: Element = []
            for it in its:
                try:
                    out.extend(next(it))
                except StopIteration:
                    return
            yield out


def _zip_structure(datasets: Any) -> Any:
    """The element structure of zip: each dataset's structure in its place."""
    flat = structure.flatten(datasets)
    return structure.pack_as(datasets, [_Sub(d._structure) for d in flat]) if flat else None


class _Sub:
    """A dataset's structure placed as a leaf of zip's structure; unwrapped by `_unwrap`."""

    def __init__(self, s: Any) -> None:
        self.s = s


def _unwrap(x: Any) -> Any:
    if isinstance(x, _Sub):
        return x.s
    if isinstance(x, dict):
        return type(x)((k, _unwrap(v)) for k, v in x.items()) if type(x) is not dict else \
            {k: _unwrap(v) for k, v in x.items()}
    if isinstance(x, tuple):
        items = [_unwrap(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    return x


class ConcatenateDataset(Dataset):
    """`concatenate`: one dataset, then another of the same types and structure."""

    def __init__(self, first: Dataset, second: Dataset) -> None:
        if not isinstance(second, Dataset):
            raise TypeError("`concatenate` expects a Dataset.")
        if not structure.same_structure(first._structure, second._structure) or first._types != second._types:
            raise TypeError(f"Two datasets to concatenate have different types {first.output_types} and "
                            f"{second.output_types}")
        self._a, self._b = first, second
        shapes = [_most_specific(a, b) for a, b in zip(first._shapes, second._shapes)]
        self._set_signature(first._structure, first._types, shapes)

    def _children(self) -> list[Dataset]:
        return [self._a, self._b]

    def _iterate(self, env: Env) -> Iterator[Element]:
        yield from self._a._iterate(env)
        yield from self._b._iterate(env)


def _most_specific(a: TensorShape, b: TensorShape) -> TensorShape:
    """The most specific shape compatible with both."""
    if a.ndims is None or b.ndims is None or a.ndims != b.ndims:
        return TensorShape(None)
    return TensorShape([x if x == y else None for x, y in zip(a.as_list(), b.as_list())])


class GeneratorDataset(Dataset):
    """`from_generator`: the elements a Python generator yields, checked against types and shapes."""

    def __init__(self, generator: Any, output_types: Any, output_shapes: Any, args: Any) -> None:
        if not callable(generator):
            raise TypeError("`generator` must be callable.")
        types = [dtypes.as_dtype(t) for t in structure.flatten(output_types)]
        if output_shapes is None:
            shapes = [TensorShape(None)] * len(types)
        else:
            shapes = [as_shape(s) for s in _flatten_shapes(output_types, output_shapes)]
            if len(shapes) != len(types):
                raise TypeError("`output_shapes` must have the same structure as `output_types`.")
        self._gen = generator
        self._args = [_leaf(a) for a in (args or ())]
        self._set_signature(output_types, types, shapes)

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(*self._args)

    def _iterate(self, env: Env) -> Iterator[Element]:
        args = [_value(env, a) for a in self._args]
        try:
            it = iter(self._gen(*args))
        except Exception as e:  # noqa: BLE001 - the generator's own failure, as TF's py_func reports it
            raise py_error(e) from e
        while True:
            try:
                value = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001
                raise py_error(e) from e
            yield self._check(value)

    def _check(self, value: Any) -> Element:
        if structure.is_structure(self._structure):
            if isinstance(value, list):
                value = tuple(value)
            if not structure.same_structure(self._structure, value):
                raise errors.InvalidArgumentError(None, None, f"TypeError: `generator` yielded an element that "
                                                  f"did not match the expected structure. The expected "
                                                  f"structure was {structure.describe(self._structure)}, but "
                                                  f"the yielded element was {value!r}.")
            leaves = structure.flatten(value)
        else:
            leaves = [value]
        out = []
        for v, dt, sh in zip(leaves, self._types, self._shapes):
            try:
                arr = to_numpy(v, dt, "the generator's element")
            except (TypeError, ValueError):
                raise errors.InvalidArgumentError(None, None, f"TypeError: `generator` yielded an element that "
                                                  f"could not be converted to the expected type. The expected "
                                                  f"type was {dt.name}, but the yielded element was {v!r}.") \
                    from None
            if not sh.is_compatible_with(arr.shape):
                raise errors.InvalidArgumentError(None, None, f"`generator` yielded an element of shape "
                                                  f"{shape_str(arr.shape)} where an element of shape "
                                                  f"{shape_str(sh.as_tuple())} was expected.")
            out.append(arr)
        return out


def _flatten_shapes(types: Any, shapes: Any) -> list[Any]:
    """Shapes flattened like `types` (a shape is a list/TensorShape leaf, not a structure)."""
    if isinstance(types, dict):
        return [s for k in sorted(types) for s in _flatten_shapes(types[k], shapes[k])]
    if isinstance(types, tuple):
        return [s for t, sh in zip(types, shapes) for s in _flatten_shapes(t, sh)]
    return [shapes]


_PY_ERRORS: list[tuple[type, type[errors.OpError]]] = [
    (TypeError, errors.InvalidArgumentError), (ValueError, errors.InvalidArgumentError),
    (StopIteration, errors.OutOfRangeError), (IndexError, errors.OutOfRangeError),
    (MemoryError, errors.ResourceExhaustedError), (NotImplementedError, errors.UnimplementedError)]


def py_error(e: BaseException) -> errors.OpError:
    """A Python exception raised by user code, as the TF error py_func reports for it."""
    if isinstance(e, errors.OpError):
        return e
    cls: type[errors.OpError] = errors.UnknownError
    for py, tf in _PY_ERRORS:
        if isinstance(e, py):
            cls = tf
            break
    return cls(None, None, f"{type(e).__name__}: {e}")
