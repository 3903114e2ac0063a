"""A pytest plugin that recorded tests/data/jitflow_op_attrs.json: the attr names of every op the op
tests create, by op type.

    PYTHONPATH=.:tests/data JITFLOW_JIT=0 python -m pytest -p record_op_attrs tests/ops \
        tests/test_layers_losses.py tests/train/test_optimizers.py tests/test_summary.py tests/framework
"""
import atexit
import json
import os

from jitflow.framework import graph as _graph

_seen: dict[str, set[str]] = {}
_create_op = _graph.Graph.create_op


def _recording_create_op(self, op_type, inputs, attrs=None, *args, **kwargs):  # type: ignore[no-untyped-def]
    op = _create_op(self, op_type, inputs, attrs, *args, **kwargs)
    _seen.setdefault(op_type, set()).update(op.attrs)
    return op


_graph.Graph.create_op = _recording_create_op  # type: ignore[method-assign]


@atexit.register
def _dump() -> None:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jitflow_op_attrs.json")
    with open(path, "w") as f:
        json.dump({k: sorted(v) for k, v in sorted(_seen.items())}, f, indent=0, sort_keys=True)
