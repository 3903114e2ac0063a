"""`tf.train.init_from_checkpoint`: variables whose initializers load their values from a checkpoint.

As in TF, the assignment map takes checkpoint names (or scopes, `"old_scope/"`, or the root `"/"`) to
variables, variable names or scopes of the current graph; each matched variable's initializer becomes
an assign from a `RestoreV2` op, so `global_variables_initializer()` built afterwards loads it.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from jitflow import dtypes, errors
from jitflow.framework import registry
from jitflow.framework.graph import Operation, get_default_graph
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import make_op, out
from jitflow.ops.state_ops import assign
from jitflow.train.checkpoint.reader import _resolve, load_checkpoint
from jitflow.variables import Variable

logger = logging.getLogger("jitflow.train")


def _restore_infer(op: Operation) -> list:
    return [(dt, TensorShape(s)) for dt, s in zip(op.attrs["dtypes"], op.attrs["shapes"])]


def _restore_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    """Reads the named tensors of the checkpoint at run time (TF's RestoreV2, whole tensors only)."""
    prefix = bytes(np.asarray(ins[0]).item()).decode() if not isinstance(ins[0], str) else ins[0]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(ins[1]).reshape(-1)]
    reader = load_checkpoint(prefix)
    res = []
    for name, dt in zip(names, op.attrs["dtypes"]):
        value = np.asarray(reader.get_tensor(name))
        if value.dtype != dt.np:
            raise errors.InvalidArgumentError(
                op.node_def, op, f"tensor_name = {name}; expected dtype {dt.name} does not equal original dtype "
                                 f"{dtypes.as_dtype(value.dtype).name}")
        res.append(value)
    return res[0] if len(res) == 1 else tuple(res)


registry.register_op("RestoreV2", _restore_infer, _restore_kernel, registry.STATEFUL, not_differentiable=True)


def _set_initializer(var: Variable, ckpt_file: str, tensor_name: str) -> None:
    """`var` is initialized from `tensor_name` of `ckpt_file` (TF's checkpoint_initializer)."""
    g = var.graph
    with g.as_default(), g.name_scope(None), g.device(var.device):
        prefix = convert_to_tensor(ckpt_file.encode(), dtype=dtypes.string)
        names = convert_to_tensor([tensor_name.encode()], dtype=dtypes.string)
        slices = convert_to_tensor([b""], dtype=dtypes.string)
        base = var.dtype.base_dtype
        restore = out(make_op("RestoreV2", [prefix, names, slices],
                              {"dtypes": [base], "shapes": [var.shape.as_list()]}, name="checkpoint_initializer"))
        var._initializer_op = assign(var, restore).op
        var._initial_value = restore


def _check_entry(var: Variable, name: str, shapes: dict[str, list[int]], ckpt: str) -> None:
    if name not in shapes:
        raise ValueError(f"Tensor {name} is not found in {ckpt} checkpoint {shapes}")
    if not var.shape.is_compatible_with(TensorShape(shapes[name])):
        raise ValueError(f"Shape of variable {var.name} ({var.shape}) doesn't match with shape of tensor {name} "
                         f"({shapes[name]}) from checkpoint reader.")


def _scope_mapping(ckpt_scope: str, graph_scope: str, store: dict[str, Variable],
                   shapes: dict[str, list[int]], ckpt: str) -> list[tuple[Variable, str]]:
    """('old/': 'new/'): every store variable under `new` from the same name under `old`."""
    scopes = graph_scope[:graph_scope.rindex("/")] if "/" in graph_scope else ""
    if not ckpt_scope.endswith("/"):
        raise ValueError(f"Assignment map with scope only name {scopes} should map to scope only {ckpt_scope}. "
                         "Should be 'scope/': 'other_scope/'.")
    pairs = []
    for var_name in sorted(n for n in store if not scopes or n.startswith(scopes + "/")):
        full = var_name[len(scopes):]
        if graph_scope != "/":
            full = full[1:]
        if ckpt_scope != "/":
            full = ckpt_scope + full
        full = full.rstrip("/")
        if full not in shapes:
            raise ValueError(f"Tensor {full} ({var_name[len(scopes) + 1:]} in {ckpt_scope}) is not found in {ckpt} "
                             "checkpoint")
        pairs.append((store[var_name], full))
    return pairs


def init_from_checkpoint(ckpt_dir_or_file: str, assignment_map: dict[str, Any]) -> None:
    """Overrides the initializers of the mapped variables with loads from the checkpoint.

    ValueError names a checkpoint tensor that is missing, a shape mismatch, or a malformed scope map;
    ValueError also if the checkpoint cannot be found.
    """
    if not isinstance(assignment_map, dict):
        raise TypeError(f"assignment_map must be a dict, got {type(assignment_map).__name__}")
    ckpt_file = _resolve(ckpt_dir_or_file)
    shapes = load_checkpoint(ckpt_file).get_variable_to_shape_map()
    store: dict[str, Variable] = getattr(get_default_graph(), "_variable_store", {})
    pairs: list[tuple[Variable, str]] = []
    for ckpt_name, current in sorted(assignment_map.items(), key=lambda kv: kv[0]):
        var = current if isinstance(current, Variable) else store.get(str(current))
        if var is not None:
            _check_entry(var, ckpt_name, shapes, ckpt_dir_or_file)
            pairs.append((var, ckpt_name))
        elif isinstance(current, str):
            pairs.extend(_scope_mapping(ckpt_name, current, store, shapes, ckpt_dir_or_file))
        else:
            raise TypeError(f"assignment_map values must be variables or names, got {current!r} for {ckpt_name!r}")
    for var, name in pairs:
        _set_initializer(var, ckpt_file, name)
        logger.debug("Initialize variable %s from checkpoint %s with %s", var.name, ckpt_dir_or_file, name)
