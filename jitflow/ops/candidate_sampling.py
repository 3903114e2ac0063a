"""Sampled losses: `tf.nn.nce_loss`, `tf.nn.sampled_softmax_loss`, the log-uniform (Zipfian) candidate
sampler and `compute_accidental_hits`.

The losses are TF's `_compute_sampled_logits` (true and sampled logits, accidental hits pushed to
-FLT_MAX, log Q subtracted) followed by sigmoid or softmax cross-entropy. The sampler draws TF's
distribution P(k) = log((k + 2) / (k + 1)) / log(range_max + 1) and reports TF's expected counts, but
from a NumPy generator seeded by the op's seeds: its draws are not TensorFlow's. Pass `sampled_values`
to reproduce a TF run exactly.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError
from jitflow.framework import registry
from jitflow.framework.graph import Operation, Tensor, name_scope
from jitflow.framework.tensor_shape import TensorShape
from jitflow.ops import array_ops as A
from jitflow.ops import math_ops as M
from jitflow.ops import nn_ops
from jitflow.ops.constant_op import convert_to_tensor
from jitflow.ops.op_util import make_op
from jitflow.ops.random_ops import generator_for, get_seed

_FLT_MAX = float(np.finfo(np.float32).max)


def _log_uniform_p(k: np.ndarray, range_max: int) -> np.ndarray:
    return (np.log(k + 2.0) - np.log(k + 1.0)) / math.log(range_max + 1.0)


def _expected(p: np.ndarray, tries: int, unique: bool, num_sampled: int) -> np.ndarray:
    """TF's expected count: p * num_sampled, or for unique sampling 1 - (1 - p)^tries."""
    if not unique:
        return (p * num_sampled).astype(np.float32)
    return (-np.expm1(tries * np.log1p(-p))).astype(np.float32)


def _sampler_kernel(ctx: Any, op: Operation, ins: list) -> tuple:
    true = np.asarray(ins[0])
    n, rmax, unique = int(op.attrs["num_sampled"]), int(op.attrs["range_max"]), bool(op.attrs["unique"])
    if unique and n > rmax:
        raise InvalidArgumentError(op.node_def, op, f"Sampler's range is too small: num_sampled {n} > range_max {rmax}")
    gen = generator_for(ctx, op)
    log_range = math.log(rmax + 1.0)
    picked: list[int] = []
    seen: set[int] = set()
    tries = 0
    while len(picked) < n:
        k = int(math.floor(math.exp(gen.random() * log_range))) - 1
        k %= rmax
        tries += 1
        if unique and k in seen:
            continue
        seen.add(k)
        picked.append(k)
    sampled = np.array(picked, np.int64)
    return (sampled, _expected(_log_uniform_p(true.astype(np.float64), rmax), tries, unique, n),
            _expected(_log_uniform_p(sampled.astype(np.float64), rmax), tries, unique, n))


def _sampler_infer(op: Operation) -> list:
    n = int(op.attrs["num_sampled"])
    return [(dtypes.int64, TensorShape([n])), (dtypes.float32, op.inputs[0].shape),
            (dtypes.float32, TensorShape([n]))]


registry.register_op("LogUniformCandidateSampler", _sampler_infer, _sampler_kernel, registry.STATEFUL,
                     not_differentiable=True)


def log_uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int, unique: bool, range_max: int,
                                  seed: int | None = None, name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(sampled_candidates, true_expected_count, sampled_expected_count) from the log-uniform distribution."""
    t = M.cast(convert_to_tensor(true_classes), dtypes.int64)
    if t.shape.ndims not in (None, 2) or (t.shape.ndims == 2 and t.shape[1].value not in (None, num_true)):
        raise ValueError(f"true_classes must be [batch_size, num_true={num_true}], got {t.shape}")
    s1, s2 = get_seed(seed)
    op = make_op("LogUniformCandidateSampler", [t],
                 {"num_true": num_true, "num_sampled": num_sampled, "unique": unique, "range_max": range_max,
                  "seed": s1 or 0, "seed2": s2 or 0}, name=name or "LogUniformCandidateSampler")
    return op.outputs[0], op.outputs[1], op.outputs[2]


def compute_accidental_hits(true_classes: Any, sampled_candidates: Any, num_true: int, seed: int | None = None,
                            name: str | None = None) -> Tensor:
    """[batch, num_sampled] float32: -FLT_MAX where a sampled candidate is one of the row's true classes, else 0.

    (TF returns the hits as sparse (indices, ids, weights); this is their dense sum, which is what the
    sampled losses add to their logits.)
    """
    with name_scope(name, "compute_accidental_hits"):
        t = M.cast(convert_to_tensor(true_classes), dtypes.int64)
        s = M.cast(convert_to_tensor(sampled_candidates), dtypes.int64)
        hit = M.reduce_any(M.equal(A.expand_dims(t, 2), A.reshape(s, [1, 1, -1])), 1)
        return M.cast(hit, dtypes.float32) * -_FLT_MAX


def _sampled_logits(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
                    num_true: int, sampled_values: Any, subtract_log_q: bool, remove_accidental_hits: bool,
                    seed: int | None) -> tuple[Tensor, Tensor]:
    """TF's `_compute_sampled_logits`: [batch, num_true + num_sampled] logits and their target labels."""
    w = weights[0] if isinstance(weights, (list, tuple)) and len(weights) == 1 else weights
    x = convert_to_tensor(inputs)
    lab = M.cast(convert_to_tensor(labels), dtypes.int64)
    if lab.shape.ndims == 1:
        lab = A.reshape(lab, [-1, num_true])
    flat = A.reshape(lab, [-1])
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(lab, num_true, num_sampled, True, num_classes, seed)
    sampled, true_expected, sampled_expected = (A.stop_gradient(convert_to_tensor(v)) for v in sampled_values)
    sampled = M.cast(sampled, dtypes.int64)
    true_w = nn_ops.embedding_lookup(w, flat)
    sampled_w = nn_ops.embedding_lookup(w, sampled)
    sampled_logits = M.matmul(x, sampled_w, transpose_b=True) + nn_ops.embedding_lookup(biases, sampled)
    rows = M.reduce_sum(A.expand_dims(x, 1) * A.reshape(true_w, A.stack([-1, num_true, A.shape(true_w)[1]])), 2)
    true_logits = rows + A.reshape(nn_ops.embedding_lookup(biases, flat), [-1, num_true])
    if remove_accidental_hits:
        sampled_logits = sampled_logits + M.cast(compute_accidental_hits(lab, sampled, num_true), x.dtype)
    if subtract_log_q:
        true_logits = true_logits - M.log(M.cast(true_expected, x.dtype))
        sampled_logits = sampled_logits - M.log(M.cast(sampled_expected, x.dtype))
    logits = A.concat([true_logits, sampled_logits], 1)
    targets = A.concat([A.ones_like(true_logits) / float(num_true), A.zeros_like(sampled_logits)], 1)
    return logits, targets


def nce_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
             num_true: int = 1, sampled_values: Any = None, remove_accidental_hits: bool = False,
             partition_strategy: str = "mod", name: str = "nce_loss") -> Tensor:
    """Noise-contrastive estimation loss per example ([batch]), as TF computes it."""
    with name_scope(name):
        logits, targets = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                          sampled_values, True, remove_accidental_hits, None)
        losses = nn_ops.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits, name="sampled_losses")
        return M.reduce_sum(losses, 1)


def sampled_softmax_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
                         num_true: int = 1, sampled_values: Any = None, remove_accidental_hits: bool = True,
                         partition_strategy: str = "mod", name: str = "sampled_softmax_loss",
                         seed: int | None = None) -> Tensor:
    """Softmax cross-entropy over the true class and `num_sampled` sampled classes ([batch]), as TF."""
    with name_scope(name):
        logits, targets = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                          sampled_values, True, remove_accidental_hits, seed)
        targets = A.stop_gradient(targets, name="labels_stop_gradient")
        return nn_ops.softmax_cross_entropy_with_logits_v2(labels=targets, logits=logits)
