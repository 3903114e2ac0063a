"""TensorFlow's OpDefs (attr names, types and defaults; input and output args), for every TF op type.

They come from `tf_ops.pb.gz` (TensorFlow's whole op registry as a binary OpList, docs stripped; made
by tests/data/make_op_schemas.py) and decide how an op is written to and read from a `NodeDef`; the
op types jitflow has among them are its coverage table (tests/data/tf_op_coverage.txt).
"""
from __future__ import annotations

import functools
import gzip
import os

from jitflow.protos.op_def import OpDef, OpList

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_ops.pb.gz")


@functools.lru_cache(maxsize=1)
def _all() -> dict[str, OpDef]:
    """Parsed once, on first use (graph import/export only)."""
    with gzip.open(_PATH, "rb") as f:
        ops = OpList.FromString(f.read())
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
