"""The global step: `get_or_create_global_step`, `get_global_step`, `create_global_step`, `global_step`."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Graph, GraphKeys, Tensor, get_default_graph
from jitflow.ops.init_ops import zeros_initializer
from jitflow.variables import get_variable

GLOBAL_STEP_NAME = "global_step"


def global_step(sess: Any, global_step_tensor: Any) -> int:
    """The current value of the global step, as a Python int."""
    return int(sess.run(global_step_tensor))


def get_global_step(graph: Graph | None = None) -> Any:
    """The global step variable of `graph` (the default graph), or None if it has none.

    It is the single member of the GLOBAL_STEP collection, else the tensor named `global_step:0`.
    """
    g = graph if graph is not None else get_default_graph()
    found = g.get_collection(GraphKeys.GLOBAL_STEP)
    if len(found) > 1:
        raise TypeError("Multiple tensors in global_step collection.")
    if found:
        gs = found[0]
    else:
        try:
            gs = g.get_tensor_by_name(GLOBAL_STEP_NAME + ":0")
        except KeyError:
            return None
    assert_global_step(gs)
    return gs


def assert_global_step(global_step_tensor: Any) -> None:
    """TypeError unless `global_step_tensor` is an integer scalar variable or tensor."""
    if not hasattr(global_step_tensor, "dtype") or not hasattr(global_step_tensor, "shape"):
        raise TypeError(f"Existing \"global_step\" must be a Variable or Tensor: {global_step_tensor}.")
    if not global_step_tensor.dtype.is_integer:
        raise TypeError(f"Existing \"global_step\" does not have integer type: {global_step_tensor.dtype}")
    shape = global_step_tensor.shape
    if shape.ndims != 0 and shape.is_fully_defined():
        raise TypeError(f"Existing \"global_step\" is not scalar: {shape}")


def create_global_step(graph: Graph | None = None) -> Any:
    """Creates the int64 scalar `global_step` variable (zero, not trainable); ValueError if it exists."""
    g = graph if graph is not None else get_default_graph()
    if get_global_step(g) is not None:
        raise ValueError("\"global_step\" already exists.")
    with g.as_default(), g.name_scope(None):
        return get_variable(GLOBAL_STEP_NAME, shape=[], dtype=dtypes.int64, initializer=zeros_initializer(),
                            trainable=False, collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Graph | None = None) -> Any:
    """The graph's global step, created if it has none."""
    g = graph if graph is not None else get_default_graph()
    gs = get_global_step(g)
    return gs if gs is not None else create_global_step(g)


GLOBAL_STEP_READ_KEY = "global_step_read_op_cache"


def _get_or_create_global_step_read(graph: Graph | None = None) -> Tensor | None:
    """TF's copy of the global step (`global_step/add:0`, the step plus zero) that session hooks fetch.

    Being a copy computed from the variable, it holds the step from before the run's train op, where
    fetching the variable itself gives its value at the end of the run.
    """
    g = graph or get_default_graph()
    cached = g.get_collection(GLOBAL_STEP_READ_KEY)
    if cached:
        return cached[0]
    gs = get_global_step(g)
    if gs is None:
        return None
    with g.as_default(), g.name_scope(None), g.control_dependencies(None), g.name_scope(gs.op.name + "/"):
        read = gs + 0
    g.add_to_collection(GLOBAL_STEP_READ_KEY, read)
    return read
