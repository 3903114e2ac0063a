"""File datasets: TFRecordDataset, TextLineDataset, FixedLengthRecordDataset."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.data.dataset_ops import Dataset, Element, Env, tensor_captures
from jitflow.data.tf_record import TFRecordOptions, open_compressed, read_records
from jitflow.framework.graph import Tensor
from jitflow.framework.tensor_shape import as_shape
from jitflow.ops.constant_op import to_numpy


class _FileDataset(Dataset):
    """A dataset of string scalars read from files (a string, a list of strings or a string tensor)."""

    def __init__(self, filenames: Any, compression_type: Any = None) -> None:
        if isinstance(filenames, Tensor):
            if filenames.dtype != dtypes.string:
                raise TypeError(f"`filenames` must be a tf.string tensor, got {filenames.dtype.name}")
            self._files: Any = filenames
        else:
            self._files = to_numpy(filenames, dtypes.string, "filenames")
            if self._files.ndim > 1:
                raise ValueError("`filenames` must be a scalar or a vector of strings.")
        self._compression = compression_type
        self._set_signature(None, [dtypes.string], [as_shape([])])

    def _own_captures(self) -> list[Tensor]:
        return tensor_captures(self._files, self._compression)

    def _names(self, env: Env) -> tuple[list[str], str]:
        files = env.values[self._files] if isinstance(self._files, Tensor) else self._files
        comp = env.values[self._compression] if isinstance(self._compression, Tensor) else self._compression
        comp = comp.item() if isinstance(comp, np.ndarray) else comp
        names = [f.decode() if isinstance(f, bytes) else str(f) for f in np.asarray(files, dtype=object).ravel()]
        return names, TFRecordOptions.get_compression_type_string(comp)



class ListFilesDataset(_FileDataset):
    """`Dataset.list_files` without its shuffle: the sorted names matching the glob pattern(s)."""

    def _iterate(self, env: Env) -> Iterator[Element]:
        import glob

        patterns, _ = self._names(env)
        names = sorted({n for p in patterns for n in glob.glob(p)})
        if not names:
            raise errors.InvalidArgumentError(None, None, f"No files matched pattern: {', '.join(patterns)}")
        for n in names:
            yield [np.array(n.encode(), dtype=object)]


class RecordFileDataset(_FileDataset):
    """A file dataset whose elements are the records of each file in turn (see `_records`)."""

    def _iterate(self, env: Env) -> Iterator[Element]:
        names, comp = self._names(env)
        for name in names:
            for rec in self._records(name, comp):
                yield [np.array(rec, dtype=object)]

    def record_batches(self, env: Env, n: int) -> Iterator[np.ndarray]:
        """The records as object vectors of `n` (the last one shorter), across file boundaries.

        `batch` reads through this: one array per batch instead of one 0-d array per record.
        """
        names, comp = self._names(env)
        records = itertools.chain.from_iterable(self._records(name, comp) for name in names)
        while True:
            chunk = list(itertools.islice(records, n))
            if not chunk:
                return
            out = np.empty(len(chunk), dtype=object)
            out[:] = chunk  # element-wise: never a 2-D array of equal-length bytes
            yield out

    def _records(self, name: str, comp: str) -> Iterator[bytes]:
        raise NotImplementedError


class TFRecordDataset(RecordFileDataset):
    """`tf.data.TFRecordDataset`: the records of TFRecord files, one file after another."""

    def __init__(self, filenames: Any, compression_type: Any = None, buffer_size: Any = None,
                 num_parallel_reads: Any = None) -> None:
        super().__init__(filenames, compression_type)

    def _records(self, name: str, comp: str) -> Iterator[bytes]:
        return read_records(name, comp)


class TextLineDataset(RecordFileDataset):
    """`tf.data.TextLineDataset`: the lines of text files, without their line endings."""

    def __init__(self, filenames: Any, compression_type: Any = None, buffer_size: Any = None) -> None:
        super().__init__(filenames, compression_type)

    def _records(self, name: str, comp: str) -> Iterator[bytes]:
        f = open_compressed(name, comp)
        try:
            for line in f:
                yield line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line
        finally:
            f.close()


class FixedLengthRecordDataset(RecordFileDataset):
    """`tf.data.FixedLengthRecordDataset`: records of `record_bytes` bytes between a header and a footer."""

    def __init__(self, filenames: Any, record_bytes: int, header_bytes: int | None = None,
                 footer_bytes: int | None = None, buffer_size: Any = None, compression_type: Any = None) -> None:
        super().__init__(filenames, compression_type)
        self._rec, self._head, self._foot = int(record_bytes), int(header_bytes or 0), int(footer_bytes or 0)
        if self._rec <= 0:
            raise errors.InvalidArgumentError(None, None, f"record_bytes must be positive, got {record_bytes}")

    def _records(self, name: str, comp: str) -> Iterator[bytes]:
        f = open_compressed(name, comp)
        try:
            data = f.read()
        finally:
            f.close()
        body = data[self._head:len(data) - self._foot]
        for i in range(0, len(body) - self._rec + 1, self._rec):
            yield body[i:i + self._rec]
