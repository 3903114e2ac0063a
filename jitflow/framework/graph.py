"""`Graph`, `Operation` and `Tensor`: the data structure a TF1 program builds.

Ops are immutable once created (except for added control inputs, which bump the graph version),
so a compiled plan stays valid while new ops are added elsewhere in the graph.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.device import DeviceSpec
from jitflow.framework.tensor_shape import TensorShape, as_shape

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VALID_OP_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$")
_VALID_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.\-/>]*$")


class GraphKeys:
    """Standard names of graph collections."""

    GLOBAL_VARIABLES = "variables"
    VARIABLES = GLOBAL_VARIABLES
    LOCAL_VARIABLES = "local_variables"
    METRIC_VARIABLES = "metric_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    SUMMARIES = "summaries"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    CONCATENATED_VARIABLES = "concatenated_variables"
    SAVERS = "savers"
    WEIGHTS = "weights"
    BIASES = "biases"
    ACTIVATIONS = "activations"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SAVEABLE_OBJECTS = "saveable_objects"
    RESOURCES = "resources"
    LOCAL_RESOURCES = "local_resources"
    TRAINABLE_RESOURCE_VARIABLES = "trainable_resource_variables"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    READY_FOR_LOCAL_INIT_OP = "ready_for_local_init_op"
    SUMMARY_OP = "summary_op"
    GLOBAL_STEP = "global_step"
    EVAL_STEP = "eval_step"
    TRAIN_OP = "train_op"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"


def user_frame() -> tuple[str, int, str]:
    """(file, line, function) of the innermost caller outside the jitflow package."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG_DIR) and "importlib" not in fn:
            return (fn, f.f_lineno, f.f_code.co_name)
        f = f.f_back  # type: ignore[assignment]
    return ("<unknown>", 0, "<unknown>")


class NodeDef:
    """A light stand-in for TF's NodeDef proto: name, op, inputs, device, attrs."""

    __slots__ = ("name", "op", "input", "device", "attr")

    def __init__(self, op: Operation) -> None:
        self.name = op.name
        self.op = op.type
        self.input = [t.name for t in op.inputs] + ["^" + c.name for c in op.control_inputs]
        self.device = op.device
        self.attr = dict(op.attrs)

    def __repr__(self) -> str:
        return f"name: {self.name!r} op: {self.op!r} input: {self.input}"


class Tensor:
    """One output of an `Operation`: a symbolic handle to a value computed when a session runs."""

    __slots__ = ("_op", "_value_index", "_dtype", "_shape", "__weakref__")
    # Python operators are installed by jitflow.ops.math_ops; NumPy must defer to them.
    __array_priority__ = 100
    __array_ufunc__ = None

    if TYPE_CHECKING:  # installed at import time by jitflow.ops.math_ops._install_operators
        def __add__(self, other: Any) -> Tensor: ...
        def __radd__(self, other: Any) -> Tensor: ...
        def __sub__(self, other: Any) -> Tensor: ...
        def __rsub__(self, other: Any) -> Tensor: ...
        def __mul__(self, other: Any) -> Tensor: ...
        def __rmul__(self, other: Any) -> Tensor: ...
        def __truediv__(self, other: Any) -> Tensor: ...
        def __rtruediv__(self, other: Any) -> Tensor: ...
        def __floordiv__(self, other: Any) -> Tensor: ...
        def __rfloordiv__(self, other: Any) -> Tensor: ...
        def __mod__(self, other: Any) -> Tensor: ...
        def __rmod__(self, other: Any) -> Tensor: ...
        def __pow__(self, other: Any) -> Tensor: ...
        def __rpow__(self, other: Any) -> Tensor: ...
        def __matmul__(self, other: Any) -> Tensor: ...
        def __rmatmul__(self, other: Any) -> Tensor: ...
        def __lt__(self, other: Any) -> Tensor: ...
        def __le__(self, other: Any) -> Tensor: ...
        def __gt__(self, other: Any) -> Tensor: ...
        def __ge__(self, other: Any) -> Tensor: ...
        def __and__(self, other: Any) -> Tensor: ...
        def __rand__(self, other: Any) -> Tensor: ...
        def __or__(self, other: Any) -> Tensor: ...
        def __ror__(self, other: Any) -> Tensor: ...
        def __xor__(self, other: Any) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __invert__(self) -> Tensor: ...
        def __pos__(self) -> Tensor: ...
        def __getitem__(self, key: Any) -> Tensor: ...

    def __init__(self, op: Operation, value_index: int, dtype: dtypes.DType, shape: TensorShape) -> None:
        self._op = op
        self._value_index = value_index
        self._dtype = dtype
        self._shape = shape

    @property
    def op(self) -> Operation:
        return self._op

    @property
    def value_index(self) -> int:
        return self._value_index

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    @property
    def graph(self) -> Graph:
        return self._op.graph

    @property
    def name(self) -> str:
        return f"{self._op.name}:{self._value_index}"

    @property
    def device(self) -> str:
        return self._op.device

    @property
    def shape(self) -> TensorShape:
        return self._shape

    def get_shape(self) -> TensorShape:
        return self._shape

    def set_shape(self, shape: Any) -> None:
        """Refines the static shape; ValueError if incompatible."""
        self._shape = self._shape.merge_with(as_shape(shape))

    def consumers(self) -> list[Operation]:
        return [op for op in self.graph._consumers.get(self._op, ()) if self in op.inputs]

    def eval(self, feed_dict: Any = None, session: Any = None) -> Any:
        """Runs the default (or given) session to compute this tensor."""
        from jitflow.session import _session_for_eval

        return _session_for_eval(session, self.graph, "eval").run(self, feed_dict)

    def _as_graph_element(self) -> Tensor:
        return self

    def __repr__(self) -> str:
        return f"<tf.Tensor '{self.name}' shape={self._shape} dtype={self._dtype.name}>"

    def __str__(self) -> str:
        return f'Tensor("{self.name}", shape={self._shape}, dtype={self._dtype.name})'

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:  # TF1 semantics: identity, so tensors work as dict keys
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __bool__(self) -> bool:
        raise TypeError("Using a `tf.Tensor` as a Python `bool` is not allowed. Use `if t is not None:` "
                        "instead of `if t:` to test if a tensor is defined, and use TensorFlow ops such as "
                        "tf.cond to execute subgraphs conditioned on the value of a tensor.")

    def __iter__(self) -> Iterator[Tensor]:
        dims = self._shape.as_tuple()
        if dims is None or not dims or dims[0] is None:
            raise TypeError(f"Tensor objects are only iterable when the first dimension is known ({self.name})")
        return (self[i] for i in range(dims[0]))  # type: ignore[index]

    def __len__(self) -> int:
        dims = self._shape.as_tuple()
        if dims is None or not dims or dims[0] is None:
            raise TypeError(f"len is not well defined for tensor '{self.name}' of shape {self._shape}")
        return dims[0]


class Operation:
    """A node of the graph: an op type applied to input tensors, with attributes."""

    __slots__ = ("_graph", "_type", "_name", "_inputs", "_control_inputs", "_outputs", "_attrs",
                 "_device", "_id", "_traceback", "_opdef", "__weakref__")

    def __init__(self, graph: Graph, op_type: str, name: str, inputs: list[Tensor],
                 attrs: dict[str, Any], control_inputs: list[Operation], device: str,
                 opdef: registry.OpDef, traceback: tuple[str, int, str]) -> None:
        self._graph = graph
        self._type = op_type
        self._name = name
        self._inputs = tuple(inputs)
        self._control_inputs = list(control_inputs)
        self._attrs = attrs
        self._device = device
        self._opdef = opdef
        self._traceback = traceback
        self._outputs: tuple[Tensor, ...] = ()
        self._id = -1

    @property
    def type(self) -> str:
        return self._type

    @property
    def name(self) -> str:
        return self._name

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return self._inputs

    @property
    def control_inputs(self) -> list[Operation]:
        return list(self._control_inputs)

    @property
    def outputs(self) -> list[Tensor]:
        return list(self._outputs)

    def values(self) -> tuple[Tensor, ...]:
        return self._outputs

    @property
    def attrs(self) -> dict[str, Any]:
        """The op's attributes (data only: numbers, strings, DTypes, shapes, arrays, lists)."""
        return self._attrs

    def get_attr(self, name: str) -> Any:
        try:
            return self._attrs[name]
        except KeyError:
            raise ValueError(f"Operation '{self._name}' has no attr named '{name}'.") from None

    @property
    def device(self) -> str:
        return self._device

    def _set_device(self, device: Any) -> None:
        self._device = DeviceSpec.from_string(device).to_string() if isinstance(device, str) else ""

    @property
    def opdef(self) -> registry.OpDef:
        return self._opdef

    @property
    def node_def(self) -> NodeDef:
        return NodeDef(self)

    @property
    def traceback(self) -> list[tuple[str, int, str]]:
        return [self._traceback]

    def defined_at(self) -> str:
        """'file:line' of the user code that created this op."""
        return f"{self._traceback[0]}:{self._traceback[1]}"

    def _add_control_input(self, op: Operation) -> None:
        if op not in self._control_inputs:
            self._control_inputs.append(op)
            self._graph._version += 1

    def _add_control_inputs(self, ops: list[Operation]) -> None:
        for op in ops:
            self._add_control_input(op)

    def run(self, feed_dict: Any = None, session: Any = None) -> None:
        """Runs this op in the default (or given) session."""
        from jitflow.session import _session_for_eval

        _session_for_eval(session, self._graph, "run").run(self, feed_dict)

    def _as_graph_element(self) -> Operation:
        return self

    def __repr__(self) -> str:
        return f"<tf.Operation '{self._name}' type={self._type}>"

    def __str__(self) -> str:
        inputs = "".join(f'\ninput: "{t.name}"' for t in self._inputs)
        return f'name: "{self._name}"\nop: "{self._type}"{inputs}'


class Graph:
    """A TensorFlow computation graph: operations, their tensors, scopes and collections."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ops: list[Operation] = []
        self._ops_by_name: dict[str, Operation] = {}
        self._consumers: dict[Operation, list[Operation]] = {}
        self._names_in_use: dict[str, int] = {}
        self._name_stack = ""
        self._control_dependencies_stack: list[list[Operation] | None] = []
        self._device_stack: list[Any] = []
        self._collections: dict[str, list[Any]] = {}
        self._finalized = False
        self._version = 0
        self._seed: int | None = None
        self._last_id = 0
        # Per-graph state of jitflow.variables (scope stack and the get_variable store).
        self._variable_store: dict[str, Any] = {}
        self._var_scope_stack: list[Any] = []
        self._var_scope_counts: dict[str, int] = {}
        # Set while a tf.cond branch is built: rewires inputs from outside the branch (see control_flow_ops).
        self._control_flow_context: Any = None

    # -- default graph ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """Makes this the default graph inside a `with` block."""
        _default_graph_stack.push(self)
        try:
            yield self
        finally:
            _default_graph_stack.pop(self)

    # -- properties --------------------------------------------------------------------------------
    @property
    def finalized(self) -> bool:
        return self._finalized

    def finalize(self) -> None:
        """Makes the graph read-only: adding an op raises RuntimeError."""
        self._finalized = True

    def _unsafe_unfinalize(self) -> None:
        self._finalized = False

    @property
    def version(self) -> int:
        return self._version

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        self._seed = value

    @property
    def building_function(self) -> bool:
        return False

    # -- ops -----------------------------------------------------------------------------------------
    def create_op(self, op_type: str, inputs: list[Any], attrs: dict[str, Any] | None = None,
                  name: str | None = None, control_inputs: list[Any] | None = None,
                  device: str | None = None, exact_name: bool = False) -> Operation:
        """Adds an op. Its outputs' dtypes and shapes come from the op type's shape function.

        `exact_name=True` uses `name` as given (meta-graph import); otherwise it is made unique under the
        current name scope.
        """
        if self._finalized:
            raise RuntimeError("Graph is finalized and cannot be modified.")
        opdef = registry.get_opdef(op_type)
        if opdef.kernel is None:
            raise ValueError(f"Op type '{op_type}' has no kernel")
        self._check_inputs(op_type, name, inputs)
        with self._lock:
            full, exact_name, scoped = self._new_op_name(op_type, name, exact_name)
            cf = self._control_flow_context
            if cf is not None:
                inputs, extra_ctrl = cf.enter_op(op_type, list(inputs))
                control_inputs = list(control_inputs or ()) + list(extra_ctrl)
            ctrl = self._control_inputs_for(control_inputs, use_scopes=not exact_name or scoped)
            op = Operation(self, op_type, full, list(inputs), dict(attrs or {}), ctrl, "", opdef,
                           user_frame())
            if device is not None:
                op._set_device(device)
            elif not exact_name or scoped:
                op._set_device(self._apply_device_stack(op))
            outs = opdef.infer(op)
            op._outputs = tuple(Tensor(op, i, dt, as_shape(sh)) for i, (dt, sh) in enumerate(outs))
            self._add_op(op)
            if cf is not None:
                cf.created(op)
            return op

    def _check_inputs(self, op_type: str, name: str | None, inputs: list[Any]) -> None:
        """TypeError for a non-tensor input, ValueError for one from another graph."""
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"Input {i} of op '{op_type}' must be a Tensor, got {type(t).__name__}")
            if t.graph is not self:
                raise ValueError(f"Tensor {t.name} must be from the same graph as the op '{name or op_type}' "
                                 "being created.")

    def _new_op_name(self, op_type: str, name: str | None, exact_name: bool) -> tuple[str, bool, bool]:
        """(full name, exact, scoped): a name ending in '/' is a scope's name and is used as is."""
        scoped = False
        if name and name.endswith("/") and not exact_name:
            exact_name, name, scoped = True, name[:-1], True
        if exact_name:
            if name is None or name in self._ops_by_name:
                raise ValueError(f"Duplicate node name in graph: '{name}'")
            self._mark_name_used(name)
            return name, exact_name, scoped
        if name and not _VALID_OP_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid node name")
        return self.unique_name(name if name else op_type), exact_name, scoped

    def _control_inputs_for(self, control_inputs: list[Any] | None, use_scopes: bool) -> list[Operation]:
        """The op's control inputs: the active control_dependencies scopes (if `use_scopes`) plus its own."""
        ctrl: list[Operation] = []
        if use_scopes:
            for deps in self._control_dependencies_stack:
                if deps is None:  # control_dependencies(None) clears the outer scopes
                    ctrl = []
                    continue
                ctrl.extend(deps)
        for c in control_inputs or ():
            ctrl.append(c.op if isinstance(c, Tensor) else getattr(c, "op", c))
        ctrl = list(dict.fromkeys(ctrl))
        for c in ctrl:
            if c.graph is not self:
                raise ValueError(f"Control input {c.name} must be from the same graph.")
        return ctrl

    def _add_op(self, op: Operation) -> None:
        """Registers a built op: its id, its name and its consumers' index."""
        op._id = len(self._ops)
        self._last_id += 1
        self._ops.append(op)
        self._ops_by_name[op.name] = op
        for t in op._inputs:
            self._consumers.setdefault(t.op, []).append(op)

    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        if not isinstance(name, str):
            raise TypeError(f"Operation names are strings (or similar), not {type(name).__name__}.")
        op = self._ops_by_name.get(name)
        if op is None:
            raise KeyError(f"The name '{name}' refers to an Operation not in the graph.")
        return op

    def get_tensor_by_name(self, name: str) -> Tensor:
        if not isinstance(name, str):
            raise TypeError(f"Tensor names are strings (or similar), not {type(name).__name__}.")
        el = self.as_graph_element(name, allow_tensor=True, allow_operation=False)
        assert isinstance(el, Tensor)
        return el

    def as_graph_element(self, obj: Any, allow_tensor: bool = True, allow_operation: bool = True) -> Any:
        """Resolves a Tensor, Operation, Variable or name to an element of this graph."""
        if isinstance(obj, str):
            if ":" in obj:
                if not allow_tensor:
                    raise ValueError(f"Name '{obj}' appears to refer to a Tensor, not an Operation.")
                op_name, _, idx = obj.rpartition(":")
                op = self._ops_by_name.get(op_name)
                if op is None:
                    raise KeyError(f"The name '{obj}' refers to a Tensor which does not exist. The operation, "
                                   f"'{op_name}', does not exist in the graph.")
                try:
                    i = int(idx)
                    return op._outputs[i]
                except (ValueError, IndexError):
                    raise KeyError(f"The name '{obj}' refers to a Tensor which does not exist. The operation, "
                                   f"'{op_name}', exists but only has {len(op._outputs)} outputs.") from None
            if not allow_operation:
                raise ValueError(f"The name '{obj}' looks like an (invalid) Operation name, not a Tensor. "
                                 "Tensor names must be of the form \"<op_name>:<output_index>\".")
            op = self._ops_by_name.get(obj)
            if op is None:
                raise KeyError(f"The name '{obj}' refers to an Operation not in the graph.")
            return op
        el = obj._as_graph_element() if hasattr(obj, "_as_graph_element") else obj
        if isinstance(el, Tensor) and allow_tensor:
            if el.graph is not self:
                raise ValueError(f"Tensor {el} is not an element of this graph.")
            return el
        if isinstance(el, Operation) and allow_operation:
            if el.graph is not self:
                raise ValueError(f"Operation {el} is not an element of this graph.")
            return el
        kinds = [k for k, ok in (("Tensor", allow_tensor), ("Operation", allow_operation)) if ok]
        raise TypeError(f"Can not convert a {type(obj).__name__} into a {' or '.join(kinds)}.")

    # -- names -------------------------------------------------------------------------------------
    def _mark_name_used(self, name: str) -> None:
        key = name.lower()
        self._names_in_use[key] = max(self._names_in_use.get(key, 0), 1)

    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        """`name` under the current name scope, suffixed `_1`, `_2`, ... if already taken."""
        if self._name_stack:
            name = self._name_stack + "/" + name
        key = name.lower()
        i = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = i + 1
        if i > 0:
            base = key
            while key in self._names_in_use:
                key = f"{base}_{i}"
                i += 1
            if mark_as_used:
                self._names_in_use[key] = 1
            name = f"{name}_{i - 1}"
        return name

    def get_name_scope(self) -> str:
        return self._name_stack

    @contextlib.contextmanager
    def name_scope(self, name: str | None) -> Iterator[str]:
        """Opens a name scope; yields its full name with a trailing '/' (or '' for the root)."""
        old = self._name_stack
        if name is None or name == "":
            new = ""
        elif name.endswith("/"):
            if not _VALID_SCOPE_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid scope name")
            new = name[:-1]
        else:
            if not _VALID_SCOPE_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid scope name")
            new = self.unique_name(name)
        self._name_stack = new
        try:
            yield (new + "/") if new else ""
        finally:
            self._name_stack = old

    # -- control dependencies and devices ---------------------------------------------------------
    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: list[Any] | None) -> Iterator[None]:
        """Ops created inside run after `control_inputs`; `None` clears outer dependencies."""
        if control_inputs is None:
            self._control_dependencies_stack.append(None)
        else:
            ops: list[Operation] = []
            for c in control_inputs:
                if callable(c) and not hasattr(c, "_as_graph_element") and not isinstance(c, (Tensor,
                                                                                              Operation)):
                    c = c()
                el = self.as_graph_element(c)
                ops.append(el.op if isinstance(el, Tensor) else el)
            self._control_dependencies_stack.append(ops)
        try:
            yield
        finally:
            self._control_dependencies_stack.pop()

    @contextlib.contextmanager
    def device(self, device_name_or_function: Any) -> Iterator[None]:
        """Records a device (string, DeviceSpec-like or function of the op) on ops created inside."""
        spec = device_name_or_function
        if isinstance(spec, str):
            DeviceSpec.from_string(spec)  # validate now, at the user's line
        elif spec is not None and not callable(spec):
            spec = spec.to_string()
        self._device_stack.append(spec)
        try:
            yield
        finally:
            self._device_stack.pop()

    def _apply_device_stack(self, op: Operation) -> str:
        current = DeviceSpec()
        for spec in reversed(self._device_stack):  # innermost first; outer scopes fill unset fields
            if spec is None:
                break
            if callable(spec):
                op._device = current.to_string()
                res = spec(op)
                current = DeviceSpec.from_string(res or "") if isinstance(res, str) else current
            else:
                current = current.merged_over(DeviceSpec.from_string(spec))
        return current.to_string()

    @contextlib.contextmanager
    def colocate_with(self, op: Any, ignore_existing: bool = False) -> Iterator[None]:
        """Accepted for compatibility; placement here follows device scopes only."""
        yield

    # -- collections --------------------------------------------------------------------------------
    def add_to_collection(self, name: str, value: Any) -> None:
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names: Any, value: Any) -> None:
        names = (names,) if isinstance(names, str) else set(names)
        for n in names:
            self.add_to_collection(n, value)

    def get_collection_ref(self, name: str) -> list[Any]:
        return self._collections.setdefault(name, [])

    def get_collection(self, name: str, scope: str | None = None) -> list[Any]:
        items = self._collections.get(name, [])
        if scope is None:
            return list(items)
        pat = re.compile(scope)
        return [it for it in items if hasattr(it, "name") and pat.match(it.name)]

    def get_all_collection_keys(self) -> list[str]:
        return [k for k, v in self._collections.items() if v is not None]

    def clear_collection(self, name: str) -> None:
        self._collections.pop(name, None)

    def is_feedable(self, tensor: Tensor) -> bool:
        return True

    def is_fetchable(self, tensor_or_op: Any) -> bool:
        return True

    def as_graph_def(self, from_version: int | None = None, add_shapes: bool = False) -> Any:
        """This graph as TensorFlow's GraphDef protocol buffer."""
        from jitflow.framework.importer import as_graph_def

        return as_graph_def(self, from_version, add_shapes)

    def __repr__(self) -> str:
        return f"<jitflow.Graph object at {id(self):#x} with {len(self._ops)} ops>"


class _DefaultGraphStack(threading.local):
    """Per-thread stack of default graphs, over one process-wide global default graph."""

    def __init__(self) -> None:
        self.stack: list[Graph] = []

    def push(self, g: Graph) -> None:
        self.stack.append(g)

    def pop(self, g: Graph) -> None:
        if self.stack and self.stack[-1] is g:
            self.stack.pop()
        elif g in self.stack:
            self.stack.remove(g)


_default_graph_stack = _DefaultGraphStack()
_global_default_graph: Graph | None = None
_global_lock = threading.Lock()


def get_default_graph() -> Graph:
    """The innermost `as_default()` graph of this thread, else the global default graph."""
    if _default_graph_stack.stack:
        return _default_graph_stack.stack[-1]
    global _global_default_graph
    if _global_default_graph is None:
        with _global_lock:
            if _global_default_graph is None:
                _global_default_graph = Graph()
    return _global_default_graph


def reset_default_graph() -> None:
    """Replaces the global default graph with a new empty one."""
    if _default_graph_stack.stack:
        raise AssertionError("Do not use tf.reset_default_graph() to clear nested graphs. If you need a "
                             "cleared graph, exit the nesting and create a new graph.")
    global _global_default_graph
    _global_default_graph = Graph()


# -- module-level wrappers over the default graph (tf.name_scope, tf.control_dependencies, ...) -------------
class name_scope:  # noqa: N801 - TF's name
    """`tf.name_scope(name, default_name=None, values=None)`: a context manager yielding 'scope/'."""

    def __init__(self, name: str | None, default_name: str | None = None, values: Any = None) -> None:
        self._name = name if name is not None else default_name
        self._had_name = name is not None or default_name is not None
        self._values = values
        self._cm: Any = None

    def __enter__(self) -> str:
        g = _graph_from_values(self._values)
        self._cm = g.name_scope(self._name) if self._had_name else g.name_scope(None)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc)


def _graph_from_values(values: Any) -> Graph:
    if values:
        for v in values:
            g = getattr(v, "graph", None)
            if isinstance(g, Graph):
                return g
    return get_default_graph()


def control_dependencies(control_inputs: list[Any] | None) -> Any:
    """`tf.control_dependencies`: ops created inside run after `control_inputs`."""
    return get_default_graph().control_dependencies(control_inputs)


def device(device_name_or_function: Any) -> Any:
    """`tf.device`: records a device on ops created inside."""
    return get_default_graph().device(device_name_or_function)


def colocate_with(op: Any, ignore_existing: bool = False) -> Any:
    return get_default_graph().colocate_with(op, ignore_existing)


def add_to_collection(name: str, value: Any) -> None:
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names: Any, value: Any) -> None:
    get_default_graph().add_to_collections(names, value)


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key: str) -> list[Any]:
    return get_default_graph().get_collection_ref(key)


def get_name_scope() -> str:
    return get_default_graph().get_name_scope()


def set_random_seed(seed: int | None) -> None:
    """Sets the graph-level random seed of the default graph."""
    get_default_graph().seed = seed
