"""Numerical gradients for the gradient tests: central finite differences through a session."""
from __future__ import annotations

import numpy as np

import jitflow as tf


def numeric_grad(sess: tf.Session, loss: tf.Tensor, phs: list[tf.Tensor], vals: list[np.ndarray], i: int,
                 h: float = 1e-6) -> np.ndarray:
    """d loss / d vals[i] by central differences, one element at a time (the other inputs held fixed)."""
    grad = np.zeros_like(vals[i])
    feed = dict(zip(phs, vals))
    flat = grad.reshape(-1)
    for j in range(vals[i].size):
        for sign in (1, -1):
            x = vals[i].copy()
            x.reshape(-1)[j] += sign * h
            feed[phs[i]] = x
            flat[j] += sign * float(sess.run(loss, feed)) / (2 * h)
    return grad
