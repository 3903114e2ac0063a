"""The op registry: one `OpDef` per op type.

An OpDef holds everything jitflow knows about an op type: its static shape/dtype function, its NumPy
reference kernel (the specification of what the op means), its fusion kind, its gradient, and its
lowering: the formula (`jitflow.ir.formula`) from which the code generators derive its kernels, or
the reason it has none, or the library step that runs it (`library`), or that it is structural.
Ops are fully determined by (type, inputs, attrs), so a graph can be rebuilt from data alone.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Fusion kinds, used by the compiler to decide what may share a kernel.
ELEMENTWISE = "elementwise"  # out[i] = f(in[i]) with NumPy broadcasting
REDUCTION = "reduction"  # reduces over axes given by attrs
OPAQUE = "opaque"  # pure but not fusable elementwise (matmul, reshape, gather, ...)
STATEFUL = "stateful"  # reads or writes session state or has side effects; never dropped or duplicated
SOURCE = "source"  # no inputs, pure (constants)

InferFn = Callable[[Any], list]  # (op) -> [(DType, TensorShape), ...]
KernelFn = Callable[..., Any]  # (ctx, op, inputs: list[np.ndarray]) -> array | tuple | None
GradFn = Callable[..., Any]  # (op, *grads) -> list of input grads (Tensor or None)


@dataclass
class OpDef:
    """Everything jitflow knows about one op type."""

    type: str
    infer: InferFn
    kernel: KernelFn | None
    kind: str = OPAQUE
    grad: GradFn | None = None
    # Ops whose gradient is known to be zero/undefined (e.g. comparisons) need no grad function.
    not_differentiable: bool = False
    # Inputs that are variable references (Assign's `ref`): the producer is not evaluated for them,
    # the kernel gets None there and finds the variable through `op.inputs[i].op.name`.
    ref_inputs: tuple[int, ...] = ()
    # A `jitflow.ir.formula` object (Elementwise, Update) the code generators render, or None.
    lowering: Any = None
    # Why an op that could be fused has no `lowering` (it runs as its own or an interpreted step).
    no_lowering: str = ""
    # An op that feeds, names, reshapes or describes values without computing them (Const, Identity,
    # Reshape, Shape, ...): never a cluster member, and not reported as a fallback.
    structural: bool = False
    # The library step that runs the op in compiled plans: "blas" (MatMul through NumPy's BLAS) or
    # "rows" (softmax and cross-entropy row kernels, `codegen/rows.py`); "" for none.
    library: str = ""


_REGISTRY: dict[str, OpDef] = {}


def register_op(op_type: str, infer: InferFn, kernel: KernelFn | None, kind: str = OPAQUE,
                grad: GradFn | None = None, not_differentiable: bool = False,
                ref_inputs: tuple[int, ...] = (), lowering: Any = None, no_lowering: str = "",
                structural: bool = False, library: str = "") -> OpDef:
    """Registers (or replaces) the definition of `op_type`."""
    opdef = OpDef(op_type, infer, kernel, kind, grad, not_differentiable, ref_inputs, lowering, no_lowering,
                  structural, library)
    old = _REGISTRY.get(op_type)
    if old is not None and opdef.grad is None:
        opdef.grad = old.grad  # gradients may be registered before the op
        opdef.not_differentiable = old.not_differentiable
    _REGISTRY[op_type] = opdef
    return opdef


def register_gradient(op_type: str) -> Callable[[GradFn], GradFn]:
    """Decorator: registers `fn(op, *output_grads) -> [input grads]` as the gradient of `op_type`."""

    def deco(fn: GradFn) -> GradFn:
        if op_type in _REGISTRY:
            _REGISTRY[op_type].grad = fn
        else:
            _REGISTRY[op_type] = OpDef(op_type, _unregistered_infer(op_type), None, OPAQUE, fn)
        return fn

    return deco


def not_differentiable(op_type: str) -> None:
    """Declares that `op_type` has no gradient (its inputs get None)."""
    if op_type in _REGISTRY:
        _REGISTRY[op_type].not_differentiable = True
    else:
        _REGISTRY[op_type] = OpDef(op_type, _unregistered_infer(op_type), None, OPAQUE, None, True)


def _unregistered_infer(op_type: str) -> InferFn:
    def infer(op: Any) -> list:
        raise NotImplementedError(f"Op type '{op_type}' has a gradient but no definition")

    return infer


# Op types that run Python by nature (py_func): always interpreted and a fusion barrier, with the reason
# `explain` reports; JITFLOW_FALLBACK=error does not refuse them.
INTERPRETED: dict[str, str] = {}


def get_opdef(op_type: str) -> OpDef:
    """The OpDef of `op_type`; ValueError for unknown types."""
    try:
        opdef = _REGISTRY[op_type]
    except KeyError:
        raise ValueError(f"Op type not registered '{op_type}'") from None
    return opdef


def lowering_of(op_type: str) -> Any:
    """The `lowering` of `op_type`'s OpDef, or None (also for unknown types)."""
    opdef = _REGISTRY.get(op_type)
    return None if opdef is None else opdef.lowering


def registered_types() -> list[str]:
    """All registered op types, sorted."""
    return sorted(t for t, d in _REGISTRY.items() if d.kernel is not None)
