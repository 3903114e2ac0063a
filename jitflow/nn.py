"""The `tf.nn` namespace: re-exports only."""
# ruff: noqa: F401
from jitflow.ops import nn_grad as _nn_grad  # registers the gradients of the ops below
from jitflow.ops.depthwise_ops import depthwise_conv2d, depthwise_conv2d_native, separable_conv2d
from jitflow.ops.math_ops import sigmoid, tanh
from jitflow.ops.nn_ops import (
    avg_pool,
    bias_add,
    conv2d,
    conv2d_backprop_filter,
    conv2d_backprop_input,
    conv2d_transpose,
    dropout,
    elu,
    embedding_lookup,
    in_top_k,
    l2_loss,
    l2_normalize,
    leaky_relu,
    log_softmax,
    max_pool,
    moments,
    relu,
    relu6,
    sigmoid_cross_entropy_with_logits,
    softmax,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    softplus,
    sparse_softmax_cross_entropy_with_logits,
    top_k,
    xw_plus_b,
)
