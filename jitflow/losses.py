"""`tf.losses`: TF1's loss functions with weights, reductions and the LOSSES collection."""
from __future__ import annotations

from typing import Any

from jitflow import dtypes
from jitflow.framework.graph import GraphKeys, Tensor, get_default_graph
from jitflow.framework.graph import name_scope as _name_scope
from jitflow.ops import array_ops, math_ops, nn_ops
from jitflow.ops.constant_op import convert_to_tensor


class Reduction:
    """How `compute_weighted_loss` reduces weighted per-example losses."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key}.")


def _safe_div(num: Tensor, den: Tensor, name: str | None = None) -> Tensor:
    """num / den, or 0 where den is 0 (TF names the loss's final op "value")."""
    zero = array_ops.zeros_like(den)
    safe = math_ops.where_v2(math_ops.equal(den, zero), array_ops.ones_like(den), den)
    return math_ops.where_v2(math_ops.greater(den, zero), math_ops.truediv(num, safe), zero, name=name)


def _num_present(losses: Tensor, weights: Tensor) -> Tensor:
    """Number of entries of `losses` whose (broadcast) weight is non-zero."""
    w = math_ops.multiply(array_ops.ones_like(losses), weights)
    nonzero = math_ops.cast(math_ops.not_equal(w, array_ops.zeros_like(w)), losses.dtype)
    return math_ops.reduce_sum(nonzero)


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: str | None = None,
                          loss_collection: str | None = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weights `losses` and reduces them; the result is added to `loss_collection`."""
    Reduction.validate(reduction)
    with _name_scope(scope, "weighted_loss"):
        losses_t = convert_to_tensor(losses)
        input_dtype = losses_t.dtype
        if not input_dtype.is_floating:
            raise TypeError(f"losses must be floating point, got {input_dtype.name}")
        losses_t = math_ops.cast(losses_t, dtypes.float32)
        w = math_ops.cast(convert_to_tensor(weights, dtype=dtypes.float32) if not isinstance(weights, Tensor)
                          else weights, dtypes.float32)
        weighted = math_ops.multiply(losses_t, w)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            loss = math_ops.reduce_sum(weighted)
            if reduction == Reduction.MEAN:
                loss = _safe_div(loss, math_ops.reduce_sum(math_ops.multiply(array_ops.ones_like(losses_t), w)),
                                 "value")
            elif reduction == Reduction.SUM_BY_NONZERO_WEIGHTS:
                loss = _safe_div(loss, _num_present(losses_t, w), "value")
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _safe_div(loss, math_ops.cast(array_ops.size(losses_t), dtypes.float32), "value")
        loss = math_ops.cast(loss, input_dtype)
        if loss_collection:
            get_default_graph().add_to_collection(loss_collection, loss)
        return loss


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                       loss_collection: str | None = GraphKeys.LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted mean of (labels - predictions)²."""
    with _name_scope(scope, "mean_squared_error") as sc:
        p = convert_to_tensor(predictions)
        lab = math_ops.cast(convert_to_tensor(labels), p.dtype)
        return compute_weighted_loss(math_ops.squared_difference(p, lab), weights, sc, loss_collection,
                                     reduction)


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                        loss_collection: str | None = GraphKeys.LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted mean of |labels - predictions|."""
    with _name_scope(scope, "absolute_difference") as sc:
        p = convert_to_tensor(predictions)
        lab = math_ops.cast(convert_to_tensor(labels), p.dtype)
        return compute_weighted_loss(math_ops.abs(math_ops.subtract(p, lab)), weights, sc, loss_collection,
                                     reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0, scope: str | None = None,
               loss_collection: str | None = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Quadratic within `delta` of the label, linear beyond."""
    with _name_scope(scope, "huber_loss") as sc:
        p = convert_to_tensor(predictions)
        err = math_ops.abs(math_ops.subtract(p, math_ops.cast(convert_to_tensor(labels), p.dtype)))
        quad = math_ops.minimum(err, delta)
        lin = math_ops.subtract(err, quad)
        losses = math_ops.add(math_ops.multiply(0.5, math_ops.square(quad)), math_ops.multiply(delta, lin))
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def log_loss(labels: Any, predictions: Any, weights: Any = 1.0, epsilon: float = 1e-7, scope: str | None = None,
             loss_collection: str | None = GraphKeys.LOSSES,
             reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Binary cross-entropy of probabilities."""
    with _name_scope(scope, "log_loss") as sc:
        p = convert_to_tensor(predictions)
        lab = math_ops.cast(convert_to_tensor(labels), p.dtype)
        losses = math_ops.subtract(
            math_ops.negative(math_ops.multiply(lab, math_ops.log(math_ops.add(p, epsilon)))),
            math_ops.multiply(math_ops.subtract(1.0, lab), math_ops.log(math_ops.add(math_ops.subtract(1.0, p),
                                                                                       epsilon))))
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: str | None = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Softmax cross-entropy against one-hot labels (optionally smoothed)."""
    with _name_scope(scope, "softmax_cross_entropy_loss") as sc:
        lg = convert_to_tensor(logits)
        lab = math_ops.cast(convert_to_tensor(onehot_labels), lg.dtype)
        if label_smoothing > 0:
            n = math_ops.cast(array_ops.shape(lab)[-1], lg.dtype)
            lab = math_ops.add(math_ops.multiply(lab, 1.0 - label_smoothing), math_ops.truediv(label_smoothing, n))
        losses = nn_ops.softmax_cross_entropy_with_logits_v2(labels=lab, logits=lg, name="xentropy")
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
                                 loss_collection: str | None = GraphKeys.LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Softmax cross-entropy against integer class labels."""
    with _name_scope(scope, "sparse_softmax_cross_entropy_loss") as sc:
        losses = nn_ops.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits, name="xentropy")
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: str | None = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Sigmoid cross-entropy against multi-label targets (optionally smoothed)."""
    with _name_scope(scope, "sigmoid_cross_entropy_loss") as sc:
        lg = convert_to_tensor(logits)
        lab = math_ops.cast(convert_to_tensor(multi_class_labels), lg.dtype)
        if label_smoothing > 0:
            lab = math_ops.add(math_ops.multiply(lab, 1.0 - label_smoothing), 0.5 * label_smoothing)
        losses = nn_ops.sigmoid_cross_entropy_with_logits(labels=lab, logits=lg, name="xentropy")
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def add_loss(loss: Tensor, loss_collection: str = GraphKeys.LOSSES) -> None:
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope: str | None = None, loss_collection: str = GraphKeys.LOSSES) -> list[Tensor]:
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope: str | None = None) -> list[Tensor]:
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: str | None = None, name: str = "total_regularization_loss") -> Tensor:
    losses = get_regularization_losses(scope)
    if losses:
        return math_ops.add_n(losses, name=name)
    from jitflow.ops.constant_op import constant

    return constant(0.0)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: str | None = None) -> Tensor:
    """Sum of the LOSSES collection (and the regularization losses)."""
    losses = get_losses(scope)
    if add_regularization_losses:
        losses = losses + get_regularization_losses(scope)
    if not losses:
        raise ValueError("No losses found in the graph")
    return math_ops.add_n(losses, name=name)


def hinge_loss(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
               loss_collection: str | None = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted max(0, 1 - (2 * labels - 1) * logits) for labels in {0, 1}."""
    with _name_scope(scope, "hinge_loss") as sc:
        x = math_ops.cast(convert_to_tensor(logits), dtypes.float32)
        lab = math_ops.cast(convert_to_tensor(labels), dtypes.float32)
        if not x.shape.is_compatible_with(lab.shape):
            raise ValueError(f"Shapes {x.shape} and {lab.shape} are incompatible")
        signs = math_ops.subtract(2.0 * lab, array_ops.ones_like(lab))
        losses = nn_ops.relu(math_ops.subtract(array_ops.ones_like(lab), math_ops.multiply(signs, x)))
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)


def cosine_distance(labels: Any, predictions: Any, axis: int | None = None, weights: Any = 1.0,
                    scope: str | None = None, loss_collection: str | None = GraphKeys.LOSSES,
                    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS, dim: int | None = None) -> Tensor:
    """Weighted 1 - sum(labels * predictions) along `axis` (inputs already unit-normalized)."""
    axis = dim if axis is None else axis
    if axis is None:
        raise ValueError("You must specify 'axis'.")
    with _name_scope(scope, "cosine_distance_loss") as sc:
        p = math_ops.cast(convert_to_tensor(predictions), dtypes.float32)
        lab = math_ops.cast(convert_to_tensor(labels), dtypes.float32)
        if not p.shape.is_compatible_with(lab.shape):
            raise ValueError(f"Shapes {p.shape} and {lab.shape} are incompatible")
        losses = 1 - math_ops.reduce_sum(math_ops.multiply(p, lab), axis=(axis,), keepdims=True)
        return compute_weighted_loss(losses, weights, sc, loss_collection, reduction)
