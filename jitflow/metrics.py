"""`tf.metrics` (TF 1.x): streaming metrics over local variables.

Each metric returns `(value, update_op)`. Its state lives in float32 (float64 for mean_iou's confusion
matrix) variables named as TF names them (`accuracy/total`, `auc/true_positives`, ...), in the
`local_variables` and `metric_variables` collections, so `tf.local_variables_initializer()` resets them.
`update_op` adds the batch to the state and returns the updated metric; `value` reads the state.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import GraphKeys, Tensor, add_to_collections, control_dependencies
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import state_ops
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.debug_ops import assert_greater_equal, assert_less_equal
from jitflow.ops.segment_ops import confusion_matrix
from jitflow.ops.special_math import div_no_nan
from jitflow.variables import Variable, variable_scope

Pair = tuple[Tensor, Tensor]


def metric_variable(shape: Sequence[int], dtype: Any, validate_shape: bool = True, name: str | None = None) -> Variable:
    """A zero-initialized local variable in the `metric_variables` collection (TF's metric state)."""
    dt = dtypes.as_dtype(dtype)
    return Variable(lambda: A.zeros(list(shape), dt), trainable=False,
                    collections=[GraphKeys.LOCAL_VARIABLES, GraphKeys.METRIC_VARIABLES],
                    validate_shape=validate_shape, name=name)


def _rank(t: Tensor) -> int | None:
    return t.shape.ndims


def _squeeze_last(t: Tensor) -> Tensor:
    return A.squeeze(t, [-1])


def _remove_squeezable_dimensions(predictions: Tensor, labels: Tensor | None,
                                  weights: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """TF's rule: a trailing size-1 dimension that makes ranks differ by one is squeezed (static ranks)."""
    if labels is not None:
        rp, rl = _rank(predictions), _rank(labels)
        if rp is not None and rl is not None:
            if rp == rl + 1 and predictions.shape.as_list()[-1] == 1:
                predictions = _squeeze_last(predictions)
            elif rl == rp + 1 and labels.shape.as_list()[-1] == 1:
                labels = _squeeze_last(labels)
    if weights is None:
        return predictions, labels, None
    w = convert_to_tensor(weights)
    rw, rp = _rank(w), _rank(predictions)
    if rw is not None and rp is not None and rw != 0:
        if rw == rp + 1 and w.shape.as_list()[-1] == 1:
            w = _squeeze_last(w)
        elif rw == rp - 1:
            w = A.expand_dims(w, -1)
    return predictions, labels, w


def _broadcast_weights(weights: Tensor, values: Tensor) -> Tensor:
    """`weights` (float32) broadcast to `values`' shape."""
    w = M.cast(weights, dtypes.float32)
    return M.multiply(w, A.ones_like(values, dtype=dtypes.float32))


def _collect(metrics_collections: Any, updates_collections: Any, value: Tensor, update: Tensor) -> Pair:
    if metrics_collections:
        add_to_collections(metrics_collections, value)
    if updates_collections:
        add_to_collections(updates_collections, update)
    return value, update


def _mean_in_scope(values: Any, weights: Any) -> Pair:
    """The mean's state (`total`, `count`), value and update, inside the caller's variable scope."""
    v = M.cast(convert_to_tensor(values), dtypes.float32)
    total = metric_variable([], dtypes.float32, name="total")
    count = metric_variable([], dtypes.float32, name="count")
    if weights is None:
        num = M.cast(A.size(v), dtypes.float32)
    else:
        v, _, w = _remove_squeezable_dimensions(v, None, weights)
        assert w is not None
        w = _broadcast_weights(w, v)
        v = M.multiply(v, w)
        num = M.reduce_sum(w)
    update_total = state_ops.assign_add(total, M.reduce_sum(v))
    with control_dependencies([v]):
        update_count = state_ops.assign_add(count, num)
    zero = constant(0.0, dtypes.float32)
    value = div_no_nan(total.value(), M.maximum(count.value(), zero), name="value")
    update = div_no_nan(update_total, M.maximum(update_count, zero), name="update_op")
    return value, update


def mean(values: Any, weights: Any = None, metrics_collections: Any = None, updates_collections: Any = None,
         name: str | None = None) -> Pair:
    """The (weighted) mean of every value seen: total / count."""
    with variable_scope(name, "mean"):
        value, update = _mean_in_scope(values, weights)
    return _collect(metrics_collections, updates_collections, value, update)


def _labels_predictions(labels: Any, predictions: Any, weights: Any,
                        cast: Any = None) -> tuple[Tensor, Tensor, Tensor | None]:
    p, lab = convert_to_tensor(predictions), convert_to_tensor(labels)
    if cast is not None:
        p, lab = M.cast(p, cast), M.cast(lab, cast)
    p, lab2, w = _remove_squeezable_dimensions(p, lab, weights)
    assert lab2 is not None
    if not p.shape.is_compatible_with(lab2.shape):
        raise ValueError(f"Shapes {p.shape} and {lab2.shape} are incompatible")
    return lab2, p, w


def accuracy(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
             updates_collections: Any = None, name: str | None = None) -> Pair:
    """How often `predictions` equals `labels` (variables `accuracy/total`, `accuracy/count`)."""
    lab, p, w = _labels_predictions(labels, predictions, weights)
    if lab.dtype != p.dtype:
        p = M.cast(p, lab.dtype)
    correct = M.cast(M.equal(p, lab), dtypes.float32)
    return mean(correct, w, metrics_collections, updates_collections, name or "accuracy")


def _error_metric(default: str, err: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Pair]:
    def metric(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
               updates_collections: Any = None, name: str | None = None) -> Pair:
        lab, p, w = _labels_predictions(labels, predictions, weights)
        return mean(err(M.cast(lab, p.dtype), p), w, metrics_collections, updates_collections, name or default)
    metric.__name__ = default
    metric.__doc__ = f"The streaming {default.replace('_', ' ')} (a `mean` named `{default}`)."
    return metric


mean_absolute_error = _error_metric("mean_absolute_error", lambda lab, p: M.abs(M.subtract(p, lab)))
mean_squared_error = _error_metric("mean_squared_error", lambda lab, p: M.squared_difference(lab, p))


def root_mean_squared_error(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
                            updates_collections: Any = None, name: str | None = None) -> Pair:
    """sqrt of the streaming mean squared error (variables `root_mean_squared_error/total`, `/count`)."""
    mse, update_mse = mean_squared_error(labels, predictions, weights, None, None, name or "root_mean_squared_error")
    return _collect(metrics_collections, updates_collections, M.sqrt(mse), M.sqrt(update_mse))


# -- counts ----------------------------------------------------------------------------------------------


def _count_condition(values: Tensor, weights: Tensor | None) -> Pair:
    count = metric_variable([], dtypes.float32, name="count")
    v = M.cast(values, dtypes.float32)
    if weights is not None:
        v = M.multiply(v, M.cast(weights, dtypes.float32))
    return A.identity(count.value()), state_ops.assign_add(count, M.reduce_sum(v))


_CONDITIONS: dict[str, tuple[bool, bool]] = {  # (label, prediction) counted
    "true_positives": (True, True), "false_positives": (False, True),
    "false_negatives": (True, False), "true_negatives": (False, False)}


def _is(t: Tensor, want: bool) -> Tensor:
    return t if want else M.logical_not(t)


def _count_metric(kind: str) -> Callable[..., Pair]:
    want_label, want_pred = _CONDITIONS[kind]

    def metric(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
               updates_collections: Any = None, name: str | None = None) -> Pair:
        with variable_scope(name, kind):
            lab, p, w = _labels_predictions(labels, predictions, weights, cast=dtypes.bool)
            hit = M.logical_and(_is(lab, want_label), _is(p, want_pred))
            value, update = _count_condition(hit, None if w is None else _broadcast_weights(w, p))
        return _collect(metrics_collections, updates_collections, value, update)
    metric.__name__ = kind
    metric.__doc__ = f"The (weighted) number of {kind.replace('_', ' ')} (variable `{kind}/count`)."
    return metric


true_positives = _count_metric("true_positives")
false_positives = _count_metric("false_positives")
false_negatives = _count_metric("false_negatives")
true_negatives = _count_metric("true_negatives")


def _ratio(kind: str, other: Callable[..., Pair]) -> Callable[..., Pair]:
    def metric(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
               updates_collections: Any = None, name: str | None = None) -> Pair:
        with variable_scope(name, kind):
            lab, p, w = _labels_predictions(labels, predictions, weights, cast=dtypes.bool)
            tp, tp_up = true_positives(lab, p, w)
            x, x_up = other(lab, p, w)

            def ratio(a: Tensor, b: Tensor, op_name: str) -> Tensor:
                s = M.add(a, b)
                return M.where(M.greater(s, 0.0), M.divide(a, s), A.zeros_like(s), name=op_name)
            value, update = ratio(tp, x, "value"), ratio(tp_up, x_up, "update_op")
        return _collect(metrics_collections, updates_collections, value, update)
    metric.__name__ = kind
    metric.__doc__ = f"The streaming {kind}: true positives / (true positives + {other.__name__.replace('_', ' ')})."
    return metric


precision = _ratio("precision", false_positives)
recall = _ratio("recall", false_negatives)


# -- auc -------------------------------------------------------------------------------------------------


def _thresholds(num_thresholds: int, thresholds: Sequence[float] | None) -> list[float]:
    """TF's thresholds: evenly spaced inside (0, 1), plus -1e-7 and 1 + 1e-7 at the ends."""
    eps = 1e-7
    if thresholds is not None:
        inner = sorted(float(t) for t in thresholds)
    else:
        inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0 - eps] + inner + [1.0 + eps]


def _confusion_at_thresholds(labels: Any, predictions: Any, thresholds: list[float],
                             weights: Any) -> tuple[dict[str, Variable], dict[str, Tensor]]:
    """Per threshold, the (weighted) counts tp, fn, tn, fp (variables in TF's order) and their updates."""
    p = M.cast(convert_to_tensor(predictions), dtypes.float32)
    with control_dependencies([assert_greater_equal(p, constant(0.0), message="predictions must be in [0, 1]"),
                               assert_less_equal(p, constant(1.0), message="predictions must be in [0, 1]")]):
        lab, p, w = _labels_predictions(M.cast(convert_to_tensor(labels), dtypes.bool), A.identity(p), weights)
    n = len(thresholds)
    pred_pos = M.greater(A.reshape(p, [1, -1]), A.reshape(constant(thresholds, dtypes.float32), [n, 1]))
    label_pos = A.reshape(lab, [1, -1])
    wt = None if w is None else A.reshape(_broadcast_weights(w, p), [1, -1])
    state: dict[str, Variable] = {}
    updates: dict[str, Tensor] = {}
    for key, var_name, want_label, want_pred in (("tp", "true_positives", True, True),
                                                 ("fn", "false_negatives", True, False),
                                                 ("tn", "true_negatives", False, False),
                                                 ("fp", "false_positives", False, True)):
        hit = M.cast(M.logical_and(_is(label_pos, want_label), _is(pred_pos, want_pred)), dtypes.float32)
        if wt is not None:
            hit = M.multiply(hit, wt)
        state[key] = metric_variable([n], dtypes.float32, name=var_name)
        updates[key] = state_ops.assign_add(state[key], M.reduce_sum(hit, 1))
    return state, updates


def _auc_from(counts: Sequence[Tensor], n: int, curve: str, method: str, name: str) -> Tensor:
    """The Riemann sum over (tp, fn, tn, fp) per threshold, as TF's `compute_auc`."""
    tp, fn, tn, fp = counts
    eps = 1.0e-6
    rec = M.divide(tp + eps, tp + fn + eps)
    if curve == "ROC":
        x, y = M.divide(fp, fp + tn + eps), rec
    else:
        x, y = rec, M.divide(tp + eps, tp + fp + eps)
    dx = A.slice(x, [0], [n - 1]) - A.slice(x, [1], [n - 1])
    y0, y1 = A.slice(y, [0], [n - 1]), A.slice(y, [1], [n - 1])
    height = {"trapezoidal": lambda: (y0 + y1) / 2.0, "minoring": lambda: M.minimum(y0, y1),
              "majoring": lambda: M.maximum(y0, y1)}[method]()
    return M.reduce_sum(M.multiply(dx, height), name=name)


def auc(labels: Any, predictions: Any, weights: Any = None, num_thresholds: int = 200,
        metrics_collections: Any = None, updates_collections: Any = None, curve: str = "ROC",
        name: str | None = None, summation_method: str = "trapezoidal", thresholds: Any = None) -> Pair:
    """Area under the ROC or PR curve by a Riemann sum over `num_thresholds` thresholds (TF's defaults).

    `summation_method`: 'trapezoidal' (default), 'minoring' or 'majoring'; 'careful_interpolation' (PR)
    is summed as trapezoidal here.
    """
    if curve not in ("ROC", "PR"):
        raise ValueError(f"curve must be either ROC or PR, {curve} unknown")
    method = "trapezoidal" if summation_method == "careful_interpolation" else summation_method
    if method not in ("trapezoidal", "minoring", "majoring"):
        raise ValueError(f"Invalid summation_method: {summation_method}")
    with variable_scope(name, "auc"):
        ths = _thresholds(num_thresholds, thresholds)
        state, up = _confusion_at_thresholds(labels, predictions, ths, weights)
        n = len(ths)
        value = _auc_from([state[k].value() for k in ("tp", "fn", "tn", "fp")], n, curve, method, "value")
        update = _auc_from([up[k] for k in ("tp", "fn", "tn", "fp")], n, curve, method, "update_op")
    return _collect(metrics_collections, updates_collections, value, update)


# -- mean_iou --------------------------------------------------------------------------------------------


def mean_iou(labels: Any, predictions: Any, num_classes: int, weights: Any = None, metrics_collections: Any = None,
             updates_collections: Any = None, name: str | None = None) -> Pair:
    """Mean intersection-over-union over the classes that occur; the update op returns the confusion matrix
    (variable `mean_iou/total_confusion_matrix`, float64), as TF's does."""
    with variable_scope(name, "mean_iou"):
        lab, p, w = _labels_predictions(labels, predictions, weights)
        total = metric_variable([num_classes, num_classes], dtypes.float64, name="total_confusion_matrix")
        w64 = None if w is None else M.cast(w, dtypes.float64) * A.ones_like(M.cast(p, dtypes.float64))
        update = state_ops.assign_add(total, confusion_matrix(lab, p, num_classes, w64, dtypes.float64))
        cm = total.value()
        rows = M.cast(M.reduce_sum(cm, 0), dtypes.float32)
        cols = M.cast(M.reduce_sum(cm, 1), dtypes.float32)
        diag = M.cast(A.gather(A.reshape(cm, [-1]), list(range(0, num_classes * num_classes, num_classes + 1))),
                      dtypes.float32)
        denom = rows + cols - diag
        valid = M.reduce_sum(M.cast(M.not_equal(denom, 0.0), dtypes.float32))
        denom = M.where(M.greater(denom, 0.0), denom, A.ones_like(denom))
        iou = M.divide(diag, denom)
        value = M.where(M.greater(valid, 0.0), M.reduce_sum(iou, name="mean_iou") / valid, 0.0 * valid)
    return _collect(metrics_collections, updates_collections, value, update)
