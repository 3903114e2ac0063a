"""TensorFlow's OpDefs (attr names, types and defaults; input and output args) for jitflow's op types.

They come from `tf_ops.pbtxt` (TensorFlow's registry, docs stripped; made by
tests/data/make_op_schemas.py) and decide how an op is written to and read from a `NodeDef`.
"""
from __future__ import annotations

import functools
import os

from google.protobuf import text_format

from jitflow.protos.op_def import OpDef, OpList

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_ops.pbtxt")


@functools.lru_cache(maxsize=1)
def _all() -> dict[str, OpDef]:
    """Parsed once, on first use (graph import/export only)."""
    with open(_PATH, encoding="utf-8") as f:
        ops = text_format.Parse(f.read(), OpList())
    return {od.name: od for od in ops.op}


def get(op_type: str) -> OpDef | None:
    """TensorFlow's OpDef of `op_type`, or None when TensorFlow has no such op."""
    return _all().get(op_type)


def op_list(op_types: list[str]) -> OpList:
    """An OpList of the given op types that TensorFlow knows (a MetaGraphDef's stripped_op_list)."""
    out = OpList()
    for t in sorted(set(op_types)):
        od = get(t)
        if od is not None:
            out.op.add().CopyFrom(od)
    return out


def tf_op_types() -> list[str]:
    """Every op type with a TensorFlow OpDef here."""
    return sorted(_all())
