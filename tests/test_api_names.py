"""The TF 1.x names programs reach for, where tf.compat.v1 has them (values are tested beside each module)."""
from __future__ import annotations

import pytest

import jitflow as tf

NAMES = {
    "": "asinh acosh atanh atan2 rint erf erfc lgamma digamma div_no_nan log_sigmoid segment_sum segment_mean "
        "segment_max segment_min segment_prod unsorted_segment_sum unsorted_segment_max unsorted_segment_min "
        "unsorted_segment_mean unsorted_segment_prod unsorted_segment_sqrt_n argsort sort space_to_depth "
        "depth_to_space confusion_matrix metrics",
    "math": "asin acos atan sinh cosh asinh acosh atanh atan2 rint erf erfc lgamma digamma softsign xlogy xlog1py "
            "xdivy divide_no_nan multiply_no_nan reciprocal_no_nan log_sigmoid segment_sum unsorted_segment_sum "
            "unsorted_segment_sqrt_n top_k in_top_k zero_fraction l2_normalize log_softmax softmax softplus "
            "is_finite confusion_matrix reduce_variance reduce_std",
    "nn": "softsign selu swish silu top_k in_top_k zero_fraction nce_loss sampled_softmax_loss "
          "weighted_cross_entropy_with_logits relu_layer crelu lrn local_response_normalization space_to_depth "
          "depth_to_space sufficient_statistics normalize_moments max_pool_with_argmax "
          "log_uniform_candidate_sampler compute_accidental_hits",
    "train": "ExponentialMovingAverage AdadeltaOptimizer FtrlOptimizer ProximalGradientDescentOptimizer "
             "ProximalAdagradOptimizer piecewise_constant piecewise_constant_decay cosine_decay_restarts "
             "linear_cosine_decay",
    "layers": "Dense Conv1D Conv2D Conv2DTranspose MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D "
              "Dropout Flatten BatchNormalization Layer conv1d max_pooling1d average_pooling1d",
    "metrics": "accuracy mean precision recall auc mean_squared_error mean_absolute_error root_mean_squared_error "
               "true_positives false_positives false_negatives true_negatives mean_iou",
    "losses": "hinge_loss cosine_distance",
}


@pytest.mark.parametrize("namespace", sorted(NAMES))
def test_names_exist(namespace: str) -> None:
    ns = getattr(tf, namespace) if namespace else tf
    assert [n for n in NAMES[namespace].split() if getattr(ns, n, None) is None] == []
    assert tf.compat.v1.math.divide_no_nan is tf.math.div_no_nan
