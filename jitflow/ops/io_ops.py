"""Queue-fed readers: TFRecordReader, TextLineReader, WholeFileReader, FixedLengthRecordReader.

`reader.read(filename_queue)` is one op returning (key, value) scalars; when the current file is used
up it dequeues the next file name, so a closed, drained queue ends reading with OutOfRangeError.
A reader's position lives in the session, like a queue's elements.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.data.tf_record import TFRecordOptions, open_compressed, read_records
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.data_flow_ops import QueueBase, queue_state


class _ReaderState:
    def __init__(self) -> None:
        self.file = ""
        self.it: Iterator[bytes] | None = None
        self.index = 0
        self.records = 0
        self.files = 0

    def close(self) -> None:
        self.it = None


def _records(kind: str, opts: dict[str, Any], path: str) -> Iterator[bytes]:
    comp = TFRecordOptions.get_compression_type_string(opts.get("compression_type"))
    if kind == "TFRecordReader":
        yield from read_records(path, comp)
        return
    f = open_compressed(path, comp)
    try:
        if kind == "WholeFileReader":
            yield f.read()
        elif kind == "TextLineReader":
            for i, line in enumerate(f):
                if i >= opts.get("skip_header_lines", 0):
                    yield line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line
        else:
            data = f.read()
            rec, head, foot = opts["record_bytes"], opts["header_bytes"], opts["footer_bytes"]
            body = data[head:len(data) - foot]
            for i in range(0, len(body) - rec + 1, rec):
                yield body[i:i + rec]
    finally:
        f.close()


def _next_record(ctx: Any, op: Operation, st: _ReaderState) -> tuple[bytes, bytes]:
    while True:
        if st.it is None:
            el = queue_state(ctx, op.attrs["queue_attrs"]).take(op, 1, False)[0]
            name = el[0].item() if isinstance(el[0], np.ndarray) else el[0]
            st.file = name.decode() if isinstance(name, bytes) else str(name)
            st.it, st.index = _records(op.attrs["kind"], op.attrs["options"], st.file), 0
            st.files += 1
        rec = next(st.it, None)
        if rec is None:
            st.it = None
            continue
        key = f"{st.file}:{st.index}".encode()
        st.index += 1
        st.records += 1
        return key, rec


def _state(ctx: Any, op: Operation) -> _ReaderState:
    res = getattr(ctx, "resources", None)
    if res is None:
        res = ctx.__dict__.setdefault("resources", {})
    return res.setdefault("reader:" + op.attrs["reader"], _ReaderState())


def _read_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    st = _state(ctx, op)
    if not op.inputs:
        key, value = _next_record(ctx, op, st)
        return np.array(key, dtype=object), np.array(value, dtype=object)
    n = int(ins[0])
    keys: list[Any] = []
    values: list[Any] = []
    while len(keys) < n:
        try:
            k, v = _next_record(ctx, op, st)
        except errors.OutOfRangeError:
            if keys:
                break
            raise
        keys.append(k)
        values.append(v)
    ka, va = np.empty(len(keys), dtype=object), np.empty(len(values), dtype=object)
    ka[:], va[:] = keys, values
    return ka, va


def _read_infer(op: Operation) -> list:
    shape = TensorShape([]) if not op.inputs else TensorShape([None])
    return [(dtypes.string, shape), (dtypes.string, shape)]


registry.register_op("ReaderReadV2", _read_infer, _read_kernel, registry.STATEFUL, not_differentiable=True)
registry.register_op("ReaderNumRecordsProducedV2", lambda op: [(dtypes.int64, TensorShape([]))],
                     lambda ctx, op, ins: np.int64(_state(ctx, op).records), registry.STATEFUL)


class ReaderBase:
    """A reader of records from the files named by a queue."""

    _kind = ""

    def __init__(self, name: str | None = None, **options: Any) -> None:
        self._name = get_default_graph().unique_name(name or self._kind)
        self._options = options

    def _op(self, op_type: str, queue: Any, inputs: list[Tensor], name: str) -> Operation:
        if not isinstance(queue, QueueBase):
            raise TypeError(f"A reader reads from a queue of file names, got {queue!r}")
        return get_default_graph().create_op(op_type, inputs, {
            "reader": self._name, "kind": self._kind, "options": dict(self._options),
            "queue_attrs": dict(queue._attrs)}, name=name)

    def read(self, queue: Any, name: str | None = None) -> tuple[Tensor, Tensor]:
        """The next (key, value) record; key is b"file:index"."""
        op = self._op("ReaderReadV2", queue, [], name or "ReaderReadV2")
        return op.outputs[0], op.outputs[1]

    def read_up_to(self, queue: Any, num_records: Any, name: str | None = None) -> tuple[Tensor, Tensor]:
        """Up to `num_records` records as two vectors (fewer only at the end of the input)."""
        n = convert_to_tensor(num_records, dtype=dtypes.int64)
        op = self._op("ReaderReadV2", queue, [n], name or "ReaderReadUpToV2")
        return op.outputs[0], op.outputs[1]

    def num_records_produced(self, name: str | None = None) -> Tensor:
        return get_default_graph().create_op("ReaderNumRecordsProducedV2", [], {"reader": self._name},
                                             name=name or "ReaderNumRecordsProducedV2").outputs[0]

    @property
    def supports_serialize(self) -> bool:
        return False


class TFRecordReader(ReaderBase):
    """`tf.TFRecordReader`: the records of TFRecord files."""

    _kind = "TFRecordReader"

    def __init__(self, name: str | None = None, options: Any = None) -> None:
        super().__init__(name, compression_type=TFRecordOptions.get_compression_type_string(options))


class TextLineReader(ReaderBase):
    """`tf.TextLineReader`: the lines of text files, without line endings."""

    _kind = "TextLineReader"

    def __init__(self, skip_header_lines: int | None = None, name: str | None = None) -> None:
        super().__init__(name, skip_header_lines=int(skip_header_lines or 0))


class WholeFileReader(ReaderBase):
    """`tf.WholeFileReader`: each file's whole contents as one record."""

    _kind = "WholeFileReader"


class FixedLengthRecordReader(ReaderBase):
    """`tf.FixedLengthRecordReader`: fixed-size records between a header and a footer."""

    _kind = "FixedLengthRecordReader"

    def __init__(self, record_bytes: int, header_bytes: int | None = None, footer_bytes: int | None = None,
                 hop_bytes: int | None = None, name: str | None = None, encoding: Any = None) -> None:
        super().__init__(name, record_bytes=int(record_bytes), header_bytes=int(header_bytes or 0),
                         footer_bytes=int(footer_bytes or 0), compression_type=encoding)
