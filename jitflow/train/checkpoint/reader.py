"""`tf.train.NewCheckpointReader`, `load_checkpoint`, `list_variables`: checkpoints without a graph."""
from __future__ import annotations

import os

import numpy as np

from jitflow import dtypes

from .bundle import BundleReader
from .state import latest_checkpoint


class CheckpointReader:
    """Reads the tensors of one checkpoint by name."""

    def __init__(self, prefix: str) -> None:
        self._bundle = BundleReader(os.fspath(prefix))

    @property
    def prefix(self) -> str:
        return self._bundle.prefix

    def get_tensor(self, tensor_str: str) -> np.ndarray:
        """The saved value of `tensor_str` (NotFoundError if absent, DataLossError if damaged).

        A rank-0 tensor comes back as a NumPy scalar, as TF does.
        """
        value = self._bundle.read(_name(tensor_str))
        return value[()] if value.ndim == 0 else value

    def has_tensor(self, tensor_str: str) -> bool:
        return _name(tensor_str) in self._bundle.entries

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {k: list(e.shape) for k, e in self._bundle.entries.items()}

    def get_variable_to_dtype_map(self) -> dict[str, dtypes.DType]:
        return {k: self._bundle.dtype(k) for k in self._bundle.entries}

    def debug_string(self) -> bytes:
        """One line per tensor, as TF's reader prints: `name (DT_FLOAT) [5,5,3,8]`."""
        lines = [f"{k} ({_DT_NAMES.get(self._bundle.dtype(k).name, 'DT_INVALID')}) "
                 f"[{','.join(str(d) for d in e.shape)}]" for k, e in sorted(self._bundle.entries.items())]
        return "".join(line + "\n" for line in lines).encode()


# TF's DataType enum names, by jitflow dtype name
_DT_NAMES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int8": "DT_INT8",
             "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8",
             "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64", "bool": "DT_BOOL",
             "string": "DT_STRING", "complex64": "DT_COMPLEX64", "complex128": "DT_COMPLEX128"}


def _name(tensor_str: str) -> str:
    return tensor_str.decode() if isinstance(tensor_str, bytes) else str(tensor_str)


def NewCheckpointReader(filepattern: str) -> CheckpointReader:  # noqa: N802 - TF's name
    """A reader for the checkpoint whose prefix is `filepattern`."""
    return CheckpointReader(filepattern)


def _resolve(ckpt_dir_or_file: str) -> str:
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"Couldn't find 'checkpoint' file or checkpoints in given directory {path}")
        return latest
    return path


def load_checkpoint(ckpt_dir_or_file: str) -> CheckpointReader:
    """A reader for a checkpoint prefix, or for the latest checkpoint of a directory."""
    return CheckpointReader(_resolve(ckpt_dir_or_file))


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """(name, shape) of every tensor in the checkpoint, sorted by name."""
    shapes = load_checkpoint(ckpt_dir_or_file).get_variable_to_shape_map()
    return sorted(shapes.items())


def load_variable(ckpt_dir_or_file: str, name: str) -> np.ndarray:
    """The value of one tensor; a trailing ':0' is ignored, as TF does."""
    if name.endswith(":0"):
        name = name[:-2]
    return load_checkpoint(ckpt_dir_or_file).get_tensor(name)
