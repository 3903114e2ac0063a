"""`tf.Variable`, `tf.get_variable`, `tf.variable_scope` and the variable initialization helpers."""
from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.framework import registry
from jitflow.framework.function import outside_control_flow
from jitflow.framework.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    get_default_graph,
    user_frame,
)
from jitflow.framework.tensor_shape import TensorShape, as_shape
from jitflow.ops import init_ops, state_ops
from jitflow.ops.array_ops import identity
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.control_flow_ops import group, no_op
from jitflow.ops.math_ops import _install_operators
from jitflow.ops.op_util import make_op, out


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE


def _initialized_value_kernel(ctx: Any, op: Operation, ins: list) -> Any:
    v = ctx.variables.get(op.inputs[0].op.name)
    return v if v is not None else ins[1]


registry.register_op("InitializedValue", lambda op: [(op.inputs[1].dtype, op.inputs[0].shape)],
                     _initialized_value_kernel, registry.STATEFUL, ref_inputs=(0,), structural=True)


class Variable:
    """A value that persists across `Session.run` calls, owned by each session separately."""

    def __init__(self, initial_value: Any = None, trainable: bool | None = None, collections: Any = None,
                 validate_shape: bool = True, caching_device: Any = None, name: str | None = None,
                 variable_def: Any = None, dtype: Any = None, expected_shape: Any = None,
                 import_scope: Any = None, constraint: Any = None, use_resource: Any = None,
                 synchronization: Any = None, aggregation: Any = None, shape: Any = None) -> None:
        if variable_def is not None:
            raise ValueError("variable_def is not supported; use tf.train.import_meta_graph")
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        trainable = True if trainable is None else bool(trainable)
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        if isinstance(collections, str) or not isinstance(collections, (list, tuple, set)):
            raise ValueError(f"collections argument to Variable constructor must be a list, tuple, or set. "
                             f"Got {collections} of type {type(collections)}")
        collections = list(collections)
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections.append(GraphKeys.TRAINABLE_VARIABLES)
        self._trainable = trainable
        self._constraint = constraint
        self._save_slice_info = None
        g = initial_value.graph if isinstance(initial_value, Tensor) else get_default_graph()
        absolute = getattr(self, "_absolute_name", False)
        with g.as_default(), g.control_dependencies(None), outside_control_flow(g):
            scope_cm = g.name_scope(name + "/") if absolute and name else g.name_scope(name or "Variable")
            with scope_cm as scope:
                if callable(initial_value):
                    with g.name_scope("Initializer"), g.device(None):  # as TF: the initializer is not pinned
                        initial_value = initial_value()
                self._initial_value = convert_to_tensor(initial_value, dtype=dtype, name="initial_value") \
                    if not isinstance(initial_value, Tensor) else initial_value
                if dtype is not None and self._initial_value.dtype is not dtypes.as_dtype(dtype):
                    from jitflow.ops.math_ops import cast

                    self._initial_value = cast(self._initial_value, dtype)
                vshape = as_shape(shape) if shape is not None else self._initial_value.shape
                if validate_shape and not vshape.is_fully_defined():
                    raise ValueError(f"initial_value must have a shape specified: {self._initial_value}")
                self._variable = state_ops.variable_op(vshape if validate_shape else TensorShape(None),
                                                       self._initial_value.dtype, scope)
                self._initializer_op = state_ops.assign(self._variable, self._initial_value,
                                                        validate_shape=validate_shape, name="Assign").op
                self._snapshot = identity(self._variable, name="read")
        for key in dict.fromkeys(collections):
            g.add_to_collection(key, self)
        self._defined_at = user_frame()

    # -- identity and structure --------------------------------------------------------------------
    @classmethod
    def _from_parts(cls, variable: Tensor, initializer: Operation, snapshot: Tensor, initial_value: Tensor,
                    trainable: bool) -> Variable:
        """A Variable over existing ops (used when importing a meta graph)."""
        v = cls.__new__(cls)
        v._variable, v._initializer_op, v._snapshot = variable, initializer, snapshot
        v._initial_value, v._trainable = initial_value, trainable
        v._constraint, v._save_slice_info, v._defined_at = None, None, ("<imported>", 0, "")
        return v

    def _to_dict(self) -> dict[str, Any]:
        """The names of this variable's ops, for serializing a meta graph."""
        return {"variable_name": self._variable.name, "initializer_name": self._initializer_op.name,
                "snapshot_name": self._snapshot.name, "initial_value_name": self._initial_value.name,
                "trainable": self._trainable}

    @classmethod
    def _from_dict(cls, graph: Graph, d: dict[str, Any]) -> Variable:
        """Rebuilds a Variable from `_to_dict()` output over ops already in `graph`."""
        return cls._from_parts(graph.get_tensor_by_name(d["variable_name"]),
                               graph.get_operation_by_name(d["initializer_name"]),
                               graph.get_tensor_by_name(d["snapshot_name"]),
                               graph.get_tensor_by_name(d["initial_value_name"]), bool(d["trainable"]))

    @property
    def name(self) -> str:
        return self._variable.name

    @property
    def op(self) -> Operation:
        return self._variable.op

    @property
    def graph(self) -> Graph:
        return self._variable.graph

    @property
    def device(self) -> str:
        return self._variable.device

    @property
    def dtype(self) -> dtypes.DType:
        """The reference type (`tf.float32_ref`), as a TF 1.x ref variable; `.base_dtype` is the value type."""
        return self._variable.dtype._as_ref

    @property
    def shape(self) -> TensorShape:
        return self._variable.shape

    def get_shape(self) -> TensorShape:
        return self._variable.shape

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def constraint(self) -> Any:
        return self._constraint

    @property
    def initializer(self) -> Operation:
        return self._initializer_op

    @property
    def initial_value(self) -> Tensor:
        return self._initial_value

    def _as_graph_element(self) -> Tensor:
        return self._variable

    def _as_tensor(self) -> Tensor:
        return self._snapshot

    def _ref(self) -> Tensor:
        return self._variable

    def value(self) -> Tensor:
        """The snapshot tensor (`name/read`) through which ops read this variable."""
        return self._snapshot

    def read_value(self) -> Tensor:
        """A new read of the variable, ordered by the enclosing control dependencies."""
        with self.graph.as_default():
            return identity(self._variable, name="read")

    def initialized_value(self) -> Tensor:
        """The variable's value if initialized, else its initial value (for dependent initializers)."""
        g = self.graph
        with g.as_default(), g.control_dependencies(None):
            return out(make_op("InitializedValue", [self._variable, self._initial_value], {},
                               name="InitializedValue"))

    # -- updates ------------------------------------------------------------------------------------
    def assign(self, value: Any, use_locking: bool = False, name: str | None = None,
               read_value: bool = True) -> Any:
        with self.graph.as_default():
            t = state_ops.assign(self._variable, value, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Any:
        with self.graph.as_default():
            t = state_ops.assign_add(self._variable, delta, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Any:
        with self.graph.as_default():
            t = state_ops.assign_sub(self._variable, delta, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def eval(self, session: Any = None) -> np.ndarray:
        return self._variable.eval(session=session)

    def load(self, value: Any, session: Any = None) -> None:
        """Writes `value` into the variable in `session` (or the default session) without graph ops."""
        from jitflow.ops.constant_op import to_numpy
        from jitflow.session import _session_for_eval

        sess = _session_for_eval(session, self.graph, "load")
        arr = to_numpy(value, self.dtype, what=f"the value for variable {self.op.name}")
        if not self.shape.is_compatible_with(arr.shape):
            raise ValueError(f"Cannot load value of shape {arr.shape} into variable {self.op.name} of shape "
                             f"{self.shape}")
        sess._write_variables({self.op.name: arr})

    def set_shape(self, shape: Any) -> None:
        self._variable.set_shape(shape)
        self._snapshot.set_shape(shape)

    def __repr__(self) -> str:
        return f"<tf.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __bool__(self) -> bool:
        raise TypeError("Using a `tf.Variable` as a Python `bool` is not allowed.")

    __array_priority__ = 100
    __array_ufunc__ = None


VariableV1 = Variable
_install_operators(Variable)


class _ScopedVariable(Variable):
    """A Variable created by get_variable: its ops are named by the full variable-scope name."""

    _absolute_name = True


# -- variable scopes ------------------------------------------------------------------------------------


class VariableScope:
    """A variable scope: a name prefix for get_variable, and the reuse and default-initializer policy."""

    def __init__(self, reuse: Any, name: str = "", initializer: Any = None, regularizer: Any = None,
                 caching_device: Any = None, partitioner: Any = None, custom_getter: Any = None,
                 name_scope: str = "", dtype: Any = dtypes.float32, use_resource: Any = None,
                 constraint: Any = None) -> None:
        self._name = name
        self._reuse = reuse
        self._initializer = initializer
        self._regularizer = regularizer
        self._caching_device = caching_device
        self._partitioner = partitioner
        self._custom_getter = custom_getter
        self._name_scope = name_scope
        self._dtype = dtypes.as_dtype(dtype)
        self._use_resource = use_resource
        self._constraint = constraint

    @property
    def name(self) -> str:
        return self._name

    @property
    def original_name_scope(self) -> str:
        return self._name_scope

    @property
    def reuse(self) -> Any:
        return self._reuse

    @property
    def initializer(self) -> Any:
        return self._initializer

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    @property
    def regularizer(self) -> Any:
        return self._regularizer

    @property
    def partitioner(self) -> Any:
        return self._partitioner

    @property
    def custom_getter(self) -> Any:
        return self._custom_getter

    @property
    def caching_device(self) -> Any:
        return self._caching_device

    @property
    def use_resource(self) -> Any:
        return self._use_resource

    @property
    def constraint(self) -> Any:
        return self._constraint

    def reuse_variables(self) -> None:
        """Variables created in this scope from now on are reused."""
        self._reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self._initializer = initializer

    def set_dtype(self, dtype: Any) -> None:
        self._dtype = dtypes.as_dtype(dtype)

    def set_regularizer(self, regularizer: Any) -> None:
        self._regularizer = regularizer

    def get_variable(self, name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                     regularizer: Any = None, trainable: Any = None, collections: Any = None,
                     **kwargs: Any) -> Variable:
        full = f"{self._name}/{name}" if self._name else name
        return _get_variable(get_default_graph(), full, self, shape, dtype, initializer, regularizer,
                             trainable, collections, kwargs.get("validate_shape", True))


def _scope_stack(g: Graph) -> list[VariableScope]:
    if not g._var_scope_stack:
        g._var_scope_stack.append(VariableScope(False))
    return g._var_scope_stack


def get_variable_scope() -> VariableScope:
    """The current variable scope."""
    return _scope_stack(get_default_graph())[-1]


def _unique_var_scope(g: Graph, parent: str, base: str) -> str:
    """TF's default scope name: `base`, else `base_k` for the first k whose scope was never opened."""
    prefix = f"{parent}/{base}" if parent else base
    if not g._var_scope_counts.get(prefix, 0):
        return base
    k = 1
    while g._var_scope_counts.get(f"{prefix}_{k}", 0):
        k += 1
    return f"{base}_{k}"


@contextlib.contextmanager
def variable_scope(name_or_scope: Any, default_name: str | None = None, values: Any = None,
                   initializer: Any = None, regularizer: Any = None, caching_device: Any = None,
                   partitioner: Any = None, custom_getter: Any = None, reuse: Any = None, dtype: Any = None,
                   use_resource: Any = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Iterator[VariableScope]:
    """Opens a variable scope (and a name scope); `reuse=True`/`AUTO_REUSE` shares variables."""
    if name_or_scope is None and default_name is None:
        raise TypeError("If default_name is None then name_or_scope is required")
    if reuse is False:
        reuse = None  # TF1: reuse cannot be turned off inside a reusing scope
    g = get_default_graph()
    stack = _scope_stack(g)
    parent = stack[-1]
    if isinstance(name_or_scope, VariableScope):
        full = name_or_scope.name
        ns_cm: Any = g.name_scope(name_or_scope.original_name_scope or None) if auxiliary_name_scope \
            else contextlib.nullcontext(g.get_name_scope() + "/")
        new_reuse = True if reuse is True else (AUTO_REUSE if reuse is AUTO_REUSE else name_or_scope.reuse)
        base = name_or_scope
    else:
        if name_or_scope is None:
            short = _unique_var_scope(g, parent.name, default_name)  # type: ignore[arg-type]
        else:
            short = name_or_scope
        full = f"{parent.name}/{short}" if parent.name else short
        ns_cm = g.name_scope(short) if auxiliary_name_scope else \
            contextlib.nullcontext(g.get_name_scope() + "/")
        new_reuse = True if reuse is True or parent.reuse is True else \
            (AUTO_REUSE if reuse is AUTO_REUSE or parent.reuse is AUTO_REUSE else False)
        base = parent
    # TF: opening a scope counts it, and restarts the default-name numbering inside it
    g._var_scope_counts[full] = g._var_scope_counts.get(full, 0) + 1
    for k in [k for k in g._var_scope_counts if k.startswith(full + "/")]:
        g._var_scope_counts[k] = 0
    with ns_cm as ns:
        scope = VariableScope(
            new_reuse, full,
            initializer if initializer is not None else base.initializer,
            regularizer if regularizer is not None else base.regularizer,
            caching_device if caching_device is not None else base.caching_device,
            partitioner if partitioner is not None else base.partitioner,
            custom_getter if custom_getter is not None else base.custom_getter,
            ns if isinstance(name_or_scope, VariableScope) is False else (name_or_scope.original_name_scope
                                                                          or ns),
            dtype if dtype is not None else base.dtype,
            use_resource, constraint if constraint is not None else base.constraint)
        stack.append(scope)
        try:
            yield scope
        finally:
            stack.pop()


def _default_initializer(name: str, dtype: dtypes.DType) -> Any:
    if dtype.is_floating:
        return init_ops.GlorotUniform()
    if dtype.is_integer or dtype.is_bool or dtype.is_unsigned:
        return init_ops.Zeros()
    raise ValueError(f"An initializer for variable {name} of {dtype.name} is required")


def _existing_variable(found: Variable, full: str, reuse: Any, shape: Any, dt: Any) -> Variable:
    """The variable `full` again, when the scope allows reuse and the shape and dtype agree."""
    if reuse is not True and reuse is not AUTO_REUSE:
        where = found._defined_at
        raise ValueError(f"Variable {full} already exists, disallowed. Did you mean to set reuse=True or "
                         f"reuse=tf.AUTO_REUSE in VarScope? Originally defined at:\n\n"
                         f"  File \"{where[0]}\", line {where[1]}, in {where[2]}")
    if shape is not None and not found.shape.is_compatible_with(as_shape(shape)):
        raise ValueError(f"Trying to share variable {full}, but specified shape {as_shape(shape)} and "
                         f"found shape {found.shape}.")
    if dt is not None and dt is not found.dtype.base_dtype:
        raise ValueError(f"Trying to share variable {full}, but specified dtype {dt.name} and found "
                         f"dtype {found.dtype.base_dtype.name}.")
    return found


def _initial_value(full: str, scope: VariableScope, shape: Any, dt: Any, initializer: Any) -> tuple[Any, Any]:
    """(initial value or a function making it, dtype) of a new variable, from its initializer or the scope's."""
    if initializer is None:
        initializer = scope.initializer
    if isinstance(initializer, type):
        # An initializer class passed uninstantiated (`initializer=tf.zeros_initializer`).
        initializer = initializer(dtype=dt or scope.dtype)
    if initializer is not None and not callable(initializer):
        # A tensor or value initializer carries its own shape (and dtype).
        if shape is not None and isinstance(initializer, Tensor):
            raise ValueError("If initializer is a constant, do not specify shape.")
        init_val = initializer if isinstance(initializer, Tensor) else convert_to_tensor(initializer, dtype=dt)
        if shape is not None and not as_shape(shape).is_compatible_with(init_val.shape):
            raise ValueError(f"Shape of initializer {init_val.shape} is not compatible with {shape}")
        return init_val, dt or init_val.dtype
    var_dtype = dt or scope.dtype
    if shape is None:
        raise ValueError(f"Shape of a new variable ({full}) must be fully defined, but instead was <unknown>.")
    shp = as_shape(shape)
    if not shp.is_fully_defined():
        raise ValueError(f"Shape of a new variable ({full}) must be fully defined, but instead was {shp}.")
    init = initializer if initializer is not None else _default_initializer(full, var_dtype)
    return (lambda: init(shp.as_list(), dtype=var_dtype)), var_dtype


def _get_variable(g: Graph, full: str, scope: VariableScope, shape: Any, dtype: Any, initializer: Any,
                  regularizer: Any, trainable: Any, collections: Any, validate_shape: bool) -> Variable:
    store: dict[str, Variable] = g._variable_store
    reuse = scope.reuse
    dt = dtypes.as_dtype(dtype) if dtype is not None else None
    if full in store:
        return _existing_variable(store[full], full, reuse, shape, dt)
    if reuse is True:
        raise ValueError(f"Variable {full} does not exist, or was not created with tf.get_variable(). "
                         "Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
    init_fn, var_dtype = _initial_value(full, scope, shape, dt, initializer)
    with g.as_default():
        v = _ScopedVariable(initial_value=init_fn, trainable=trainable, collections=collections, name=full,
                            dtype=var_dtype, validate_shape=validate_shape)
    store[full] = v
    if regularizer is None:
        regularizer = scope.regularizer
    if regularizer is not None:
        with g.as_default(), g.name_scope(full + "/Regularizer/"):
            loss = regularizer(v)
        if loss is not None:
            g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
    return v


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: Any = None, collections: Any = None,
                 caching_device: Any = None, partitioner: Any = None, validate_shape: bool = True,
                 use_resource: Any = None, custom_getter: Any = None, constraint: Any = None,
                 synchronization: Any = None, aggregation: Any = None) -> Variable:
    """Gets an existing variable of the current variable scope or creates a new one."""
    scope = get_variable_scope()
    full = f"{scope.name}/{name}" if scope.name else name
    return _get_variable(get_default_graph(), full, scope, shape, dtype, initializer, regularizer, trainable,
                         collections, validate_shape)


# -- collections and initializers -------------------------------------------------------------------------


def global_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


all_variables = global_variables


def trainable_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def model_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.MODEL_VARIABLES, scope)


def moving_average_variables(scope: str | None = None) -> list[Variable]:
    return get_default_graph().get_collection(GraphKeys.MOVING_AVERAGE_VARIABLES, scope)


def variables_initializer(var_list: Any, name: str = "init") -> Operation:
    """An op that runs the initializers of `var_list`."""
    var_list = list(var_list)
    if var_list:
        return group(*[v.initializer for v in var_list], name=name)
    return no_op(name=name)


def global_variables_initializer() -> Operation:
    """An op that initializes all global variables."""
    return variables_initializer(global_variables(), name="init")


initialize_all_variables = global_variables_initializer


def local_variables_initializer() -> Operation:
    return variables_initializer(local_variables(), name="init")


initialize_local_variables = local_variables_initializer


def is_variable_initialized(variable: Any) -> Tensor:
    return state_ops.is_variable_initialized(variable)


def _report_kernel(ctx: Any, op: Operation, ins: list) -> np.ndarray:
    names = op.attrs["names"]
    mask = np.array([not bool(x) for x in ins], dtype=bool)
    return np.array([n for n, m in zip(names, mask) if m], dtype=object)


registry.register_op("ReportUninitializedVariables", lambda op: [(dtypes.string, TensorShape([None]))],
                     _report_kernel, registry.STATEFUL, not_differentiable=True, structural=True)


def report_uninitialized_variables(var_list: Any = None, name: str = "report_uninitialized_variables"
                                   ) -> Tensor:
    """A 1-D string tensor with the names of the variables not yet initialized."""
    if var_list is None:
        var_list = global_variables() + local_variables()
    var_list = list(var_list)
    g = get_default_graph()
    with g.name_scope(name) as scope:
        checks = [state_ops.is_variable_initialized(v) for v in var_list]
        names = [v.op.name.encode() for v in var_list]
        return out(g.create_op("ReportUninitializedVariables", checks, {"names": names},
                               name=scope[:-1] + "/" if scope else None))
