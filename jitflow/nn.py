"""The `tf.nn` namespace: re-exports only."""
# ruff: noqa: F401
import types as _types

from jitflow.ops import nn_grad as _nn_grad  # registers the gradients of the ops below
from jitflow.ops import rnn_cell as _rc
from jitflow.ops.batch_norm import batch_normalization, fused_batch_norm
from jitflow.ops.candidate_sampling import (
                                           compute_accidental_hits,
                                           log_uniform_candidate_sampler,
                                           nce_loss,
                                           sampled_softmax_loss,
)
from jitflow.ops.depthwise_ops import depthwise_conv2d, depthwise_conv2d_native, separable_conv2d
from jitflow.ops.math_ops import sigmoid, tanh
from jitflow.ops.nn_extras import (
                                           crelu,
                                           depth_to_space,
                                           local_response_normalization,
                                           lrn,
                                           normalize_moments,
                                           relu_layer,
                                           space_to_depth,
                                           sufficient_statistics,
                                           weighted_cross_entropy_with_logits,
                                           zero_fraction,
)
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
from jitflow.ops.pool_argmax import max_pool_with_argmax
from jitflow.ops.rnn import bidirectional_dynamic_rnn, dynamic_rnn, static_bidirectional_rnn, static_rnn
from jitflow.ops.special_math import log_sigmoid, selu, silu, softsign, swish

rnn_cell = _types.SimpleNamespace(**{n: getattr(_rc, n) for n in (
    "RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "DropoutWrapper",
    "ResidualWrapper", "DeviceWrapper", "LSTMStateTuple")})
# tf.contrib.rnn: the cells plus the static and dynamic rnn functions, under their TF 1.x names.
contrib_rnn = _types.SimpleNamespace(**vars(rnn_cell), static_rnn=static_rnn, dynamic_rnn=dynamic_rnn,
                                     static_bidirectional_rnn=static_bidirectional_rnn,
                                     bidirectional_dynamic_rnn=bidirectional_dynamic_rnn)
