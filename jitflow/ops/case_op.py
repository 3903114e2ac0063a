"""`tf.case`: the first branch whose predicate is true, built from nested `tf.cond`s as TF 1.x does."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import Tensor, control_dependencies, name_scope
from jitflow.ops.constant_op import convert_to_tensor


def _check_pairs(pred_fn_pairs: Any) -> list[tuple[Tensor, Callable[[], Any]]]:
    items = list(pred_fn_pairs.items()) if isinstance(pred_fn_pairs, dict) else pred_fn_pairs
    if not isinstance(items, (list, tuple)):
        raise TypeError("fns must be a list, tuple, or dict")
    pairs = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError("Each entry in pred_fn_pairs must be a 2-tuple")
        pred, fn = item
        if not isinstance(pred, Tensor) or pred.dtype is not dtypes.bool:
            raise TypeError(f"pred must be Tensor of type bool: {getattr(pred, 'name', pred)}")
        if not callable(fn):
            raise TypeError(f"fn for pred {pred.name} must be callable.")
        pairs.append((pred, fn))
    return pairs


def _exclusive_check(preds: list[Tensor], n: int = 1, msg: str = "") -> Any:
    """An assert that at most `n` of `preds` are true (InvalidArgumentError naming them otherwise)."""
    from jitflow.ops.array_ops import stack
    from jitflow.ops.debug_ops import Assert
    from jitflow.ops.math_ops import cast, less_equal, reduce_sum

    count = reduce_sum(cast(stack(preds), dtypes.int32))
    names = ", ".join(p.name for p in preds)
    return Assert(less_equal(count, n), [msg + f"More than {n} conditions evaluated as True: [{names}]",
                                         stack(preds)], summarize=len(preds))


def case(pred_fn_pairs: Any, default: Callable[[], Any] | None = None, exclusive: bool = False,
         strict: bool = False, name: str = "case") -> Any:
    """The result of the first `fn` whose `pred` is true, else of `default`.

    Without `default`, the last pair's `fn` is the default (as TF 1.x). `exclusive=True` adds a check
    that at most one predicate is true (InvalidArgumentError at run time otherwise).
    """
    from jitflow.ops.control_flow_ops import cond

    pairs = _check_pairs(pred_fn_pairs)
    if default is not None and not callable(default):
        raise TypeError("default must be callable.")
    if not pairs:
        if default is None:
            raise ValueError("pred_fn_pairs must not be empty when default is None")
        return default()
    with name_scope(name):
        if default is None:
            default = _last_as_default(pairs)
            pairs = pairs[:-1]
        if not pairs:
            return default()
        result = default
        for pred, fn in reversed(pairs):  # innermost first: the first true predicate wins
            result = (lambda p, f, rest: (lambda: cond(p, f, rest, strict=strict)))(pred, fn, result)
        if exclusive:
            preds = [p for p, _ in _check_pairs(pred_fn_pairs)]
            with control_dependencies([_exclusive_check(preds, 1, "Input error: exclusive=True and ")]):
                return _identity_all(result())
        return result()


def _last_as_default(pairs: list[tuple[Tensor, Callable[[], Any]]]) -> Callable[[], Any]:
    """TF 1.x's default without `default`: the last branch, which asserts that its predicate holds."""
    from jitflow.ops.array_ops import stack
    from jitflow.ops.debug_ops import Assert

    pred, fn = pairs[-1]
    preds = [p for p, _ in pairs]

    def default() -> Any:
        check = Assert(pred, ["Input error: None of conditions evaluated as True:", stack(preds)],
                       summarize=len(preds))
        with control_dependencies([check]):
            return _identity_all(fn())

    return default


def _identity_all(value: Any) -> Any:
    from jitflow.ops.array_ops import identity

    if isinstance(value, (list, tuple)):
        return type(value)(_identity_all(v) for v in value)
    return identity(value) if isinstance(value, Tensor) else identity(convert_to_tensor(value))
