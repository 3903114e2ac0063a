"""Iterators: the graph ops `MakeIterator` and `IteratorGetNext`, and the `Iterator` class around them.

An iterator's state lives in the session (`Session.resources`, keyed by the iterator's unique name), so
two sessions on one graph iterate independently. `get_next()` is one op with one output per component;
at the end of the data it raises OutOfRangeError.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.data import structure
from jitflow.data.dataset_ops import Dataset, Env, Signature
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape, as_shape


class _State:
    """One iterator in one session: its pipeline generator and the environment of its threads."""

    def __init__(self, env: Env, dataset: Dataset) -> None:
        self.env = env
        self.it = dataset._iterate(env)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.env.close()
        self.it.close() if hasattr(self.it, "close") else None


def _resources(ctx: Any) -> dict[str, Any]:
    res = getattr(ctx, "resources", None)
    if res is None:
        res = ctx.__dict__.setdefault("resources", {})
    return res


def _start(ctx: Any, key: str, dataset: Dataset, values: dict[Tensor, Any]) -> _State:
    res = _resources(ctx)
    old = res.pop(key, None)
    if old is not None:
        old.close()
    state = _State(Env(ctx, values), dataset)
    res[key] = state
    return state


def _register(ds: Dataset) -> str:
    """Datasets are Python objects: the graph keeps them, ops name them (so graphs stay serializable)."""
    g = get_default_graph()
    table: dict[str, Dataset] = g.__dict__.setdefault("_datasets", {})
    key = f"dataset_{len(table)}"
    table[key] = ds
    return key


def _dataset(op: Operation, attr: str) -> Dataset | None:
    key = op.attrs.get(attr)
    if not key:
        return None
    ds = op.graph.__dict__.get("_datasets", {}).get(key)
    if ds is None:
        raise errors.NotFoundError(op.node_def, op, f"The dataset of {op.name} is not in this graph (datasets "
                                                    "are Python objects and do not survive a meta graph export)")
    return ds


def _make_iterator_kernel(ctx: Any, op: Operation, ins: list) -> None:
    ds = _dataset(op, "dataset")
    assert ds is not None
    _start(ctx, op.attrs["iterator"], ds, dict(zip(op.inputs, ins)))


def _lookup(ctx: Any, op: Operation, key: str, ins: list) -> _State:
    """The session's state of iterator `key`; a one-shot iterator starts on first use."""
    state = _resources(ctx).get(key)
    if state is None:
        ds = _dataset(op, "one_shot")
        if ds is None:
            raise errors.FailedPreconditionError(
                op.node_def, op, "GetNext() failed because the iterator has not been initialized. Ensure that "
                                 "you have run the initializer operation for this iterator before getting the "
                                 "next element.")
        with _one_shot_lock:
            state = _resources(ctx).get(key) or _start(ctx, key, ds, dict(zip(op.inputs, ins)))
    return state


def _get_next_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    if op.attrs.get("from_handle"):
        handle = ins[0].item() if isinstance(ins[0], np.ndarray) else ins[0]
        key = handle.decode() if isinstance(handle, bytes) else str(handle)
        state = _resources(ctx).get(key)
        if state is None:
            raise errors.NotFoundError(op.node_def, op, f"No iterator for the string handle {key!r} in this "
                                                        "session (run its initializer, or fetch its "
                                                        "string_handle() first)")
    else:
        state = _lookup(ctx, op, op.attrs["iterator"], ins)
    with state.lock:
        try:
            el = next(state.it)
        except StopIteration:
            raise errors.OutOfRangeError(op.node_def, op, "End of sequence") from None
    types = op.attrs["output_types"]
    out = [v if type(v) is np.ndarray and v.dtype == dt.np else np.asarray(v, dtype=dt.np)
           for v, dt in zip(el, types)]
    return out[0] if len(out) == 1 else tuple(out)


def _string_handle_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    if op.attrs.get("one_shot"):
        _lookup(ctx, op, op.attrs["iterator"], ins)
    return np.array(op.attrs["iterator"].encode(), dtype=object)


_one_shot_lock = threading.Lock()


def _get_next_infer(op: Operation) -> list:
    return list(zip(op.attrs["output_types"], op.attrs["output_shapes"]))


registry.register_op("MakeIterator", lambda op: [], _make_iterator_kernel, registry.STATEFUL)
registry.register_op("IteratorGetNext", _get_next_infer, _get_next_kernel, registry.STATEFUL)
registry.register_op("IteratorToStringHandle", lambda op: [(dtypes.string, TensorShape([]))], _string_handle_kernel,
                     registry.STATEFUL)


class Iterator(Signature):
    """`tf.data.Iterator`: a cursor over a dataset, stepped by the `get_next()` op."""

    def __init__(self, key: str, struct: Any, types: list[dtypes.DType], shapes: list[TensorShape],
                 initializer: Operation | None = None, one_shot: Dataset | None = None,
                 handle: Tensor | None = None) -> None:
        self._key = key
        self._handle = handle
        self._structure = struct
        self._types = list(types)
        self._shapes = list(shapes)
        self._initializer = initializer
        self._one_shot_ds = one_shot

    # -- construction ---------------------------------------------------------------------------------
    @staticmethod
    def _one_shot(dataset: Dataset) -> Iterator:
        key = get_default_graph().unique_name("OneShotIterator")
        return Iterator(key, dataset._structure, dataset._types, dataset._shapes, one_shot=dataset)

    @staticmethod
    def _initializable(dataset: Dataset, shared_name: str | None = None) -> Iterator:
        key = shared_name or get_default_graph().unique_name("Iterator")
        it = Iterator(key, dataset._structure, dataset._types, dataset._shapes)
        it._initializer = it.make_initializer(dataset)
        return it

    @staticmethod
    def from_structure(output_types: Any, output_shapes: Any = None, shared_name: str | None = None,
                       output_classes: Any = None) -> Iterator:
        """An iterator for any dataset of this structure, initialized by `make_initializer(dataset)`."""
        from jitflow.data.batching import _flat_like

        types = [dtypes.as_dtype(t) for t in structure.flatten(output_types)]
        shapes = [TensorShape(None)] * len(types) if output_shapes is None else \
            [as_shape(s) for s in _flat_like(output_types, output_shapes)]
        key = shared_name or get_default_graph().unique_name("Iterator")
        return Iterator(key, structure.map_structure(lambda _: None, output_types), types, shapes)

    @staticmethod
    def from_string_handle(string_handle: Any, output_types: Any, output_shapes: Any = None,
                           output_classes: Any = None) -> Iterator:
        """An iterator that steps whichever iterator the fed `string_handle` names (a feedable iterator)."""
        from jitflow.ops.constant_op import convert_to_tensor

        it = Iterator.from_structure(output_types, output_shapes)
        it._handle = convert_to_tensor(string_handle, dtype=dtypes.string)
        return it

    # -- ops ----------------------------------------------------------------------------------------------
    @property
    def initializer(self) -> Operation:
        if self._initializer is None:
            raise ValueError("Iterator does not have an initializer.")
        return self._initializer

    def make_initializer(self, dataset: Dataset, name: str | None = None) -> Operation:
        """The op that (re)starts this iterator on `dataset`, whose structure and types must match."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"make_initializer expects a Dataset, got {dataset!r}")
        if not structure.same_structure(self._structure, dataset._structure):
            raise TypeError(f"Expected output structure {self.output_types} but got dataset with output "
                            f"structure {dataset.output_types}.")
        if dataset._types != self._types:
            raise TypeError(f"Expected output types {self.output_types} but got dataset with output types "
                            f"{dataset.output_types}.")
        for want, have in zip(self._shapes, dataset._shapes):
            if not want.is_compatible_with(have):
                raise TypeError(f"Expected output shapes compatible with {self.output_shapes} but got dataset "
                                f"with output shapes {dataset.output_shapes}.")
        g = get_default_graph()
        return g.create_op("MakeIterator", dataset._captures(), {"iterator": self._key, "dataset": _register(dataset)},
                           name=name or "MakeIterator")

    def _one_shot_args(self) -> tuple[list[Tensor], dict[str, Any]]:
        if self._one_shot_ds is None:
            return [], {"iterator": self._key}
        return self._one_shot_ds._captures(), {"iterator": self._key, "one_shot": _register(self._one_shot_ds)}

    def get_next(self, name: str | None = None) -> Any:
        """The next element, as a structure of tensors (one `IteratorGetNext` op)."""
        inputs, attrs = self._one_shot_args()
        if self._handle is not None:
            inputs, attrs = [self._handle], {"iterator": "", "from_handle": True}
        attrs.update(output_types=self._types, output_shapes=self._shapes)
        op = get_default_graph().create_op("IteratorGetNext", inputs, attrs, name=name or "IteratorGetNext")
        return structure.pack_as(self._structure, list(op.outputs))

    def string_handle(self, name: str | None = None) -> Tensor:
        """A string naming this iterator, to feed to an iterator made by `from_string_handle`."""
        inputs, attrs = self._one_shot_args()
        return get_default_graph().create_op("IteratorToStringHandle", inputs, attrs,
                                             name=name or "IteratorToStringHandle").outputs[0]


def make_one_shot_iterator(dataset: Dataset) -> Iterator:
    """`tf.compat.v1.data.make_one_shot_iterator`."""
    return dataset.make_one_shot_iterator()


def make_initializable_iterator(dataset: Dataset, shared_name: str | None = None) -> Iterator:
    """`tf.compat.v1.data.make_initializable_iterator`."""
    return dataset.make_initializable_iterator(shared_name)


def get_output_types(x: Any) -> Any:
    return x.output_types


def get_output_shapes(x: Any) -> Any:
    return x.output_shapes


def get_output_classes(x: Any) -> Any:
    return x.output_classes
