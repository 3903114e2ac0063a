"""jitflow: TensorFlow 1.x graph programs, fused and compiled with Numba.

This module is the tf-style namespace: re-exports only, no logic.
"""
# ruff: noqa: F401, E402, I001
__version__ = "0.1.0"

from jitflow import errors
from jitflow import dtypes
from jitflow.dtypes import (DType, as_dtype, float16, half, float32, float64, double, int8, int16, int32,
                            int64, uint8, uint16, uint32, uint64, bool, string, complex64, complex128,
                            float16_ref, float32_ref, float64_ref, int32_ref, int64_ref, bool_ref, string_ref)
from jitflow.framework.tensor_shape import TensorShape, Dimension, dimension_value
from jitflow.framework.graph import (Graph, Operation, Tensor, GraphKeys, get_default_graph,
                                     reset_default_graph, name_scope, control_dependencies, device,
                                     colocate_with, add_to_collection, add_to_collections, get_collection,
                                     get_collection_ref, set_random_seed)
from jitflow.framework.device import DeviceSpec
from jitflow.ops.constant_op import constant, convert_to_tensor
from jitflow.ops.math_ops import (
    add, subtract, multiply, truediv, divide, div, floordiv, floormod, mod, truncatediv, realdiv, pow,
    maximum, minimum, squared_difference, negative, abs, sign, square, sqrt, rsqrt, exp, log, log1p,
    expm1, sin, cos, tan, asin, acos, atan, sinh, cosh, tanh, sigmoid, floor, ceil, round, reciprocal,
    is_nan, is_inf, is_finite, equal, not_equal, less, less_equal, greater, greater_equal, logical_and,
    logical_or, logical_not, logical_xor, cast, to_float, to_int32, to_int64, to_double, where, where_v2,
    select, clip_by_value, add_n, reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod,
    reduce_all, reduce_any, reduce_logsumexp, argmax, argmin, matmul)
from jitflow.ops.array_ops import (placeholder, placeholder_with_default, identity, stop_gradient, shape,
                                   size, rank, reshape, fill, zeros, ones, zeros_like, ones_like)
from jitflow.ops.random_ops import random_normal, truncated_normal, random_uniform
from jitflow.ops.control_flow_ops import no_op, group, tuple
from jitflow.ops.state_ops import assign, assign_add, assign_sub, is_variable_initialized
from jitflow.ops.init_ops import (zeros_initializer, ones_initializer, constant_initializer,
                                  random_normal_initializer, truncated_normal_initializer,
                                  random_uniform_initializer, glorot_uniform_initializer,
                                  glorot_normal_initializer, variance_scaling_initializer)
from jitflow.variables import (Variable, VariableV1, VariableScope, AUTO_REUSE, get_variable,
                               variable_scope, get_variable_scope, global_variables, all_variables,
                               trainable_variables, local_variables, model_variables,
                               moving_average_variables, variables_initializer,
                               global_variables_initializer, initialize_all_variables,
                               local_variables_initializer, initialize_local_variables,
                               report_uninitialized_variables)
from jitflow.session import Session, InteractiveSession, get_default_session
from jitflow.session_config import ConfigProto, GPUOptions, GraphOptions, OptimizerOptions, RunOptions, RunMetadata

sub = subtract
mul = multiply
neg = negative
from jitflow import _namespaces
initializers = _namespaces.initializers
math = _namespaces.math
from jitflow import train
from jitflow.gradients import gradients
from jitflow.ops import math_grad  # noqa: F401
from jitflow.ops.array_ops import (expand_dims, squeeze, transpose, concat, stack, unstack, split, slice,
                                   strided_slice, gather, unsorted_segment_sum, tile, pad, broadcast_to, one_hot,
                                   range, linspace, lin_space, boolean_mask, tensordot, invert_permutation)
from jitflow.ops import array_grad  # noqa: F401
from jitflow import nn
from jitflow.ops.control_flow_ops import cond
from jitflow.ops.while_loop import while_loop
from jitflow.ops.tensor_array import TensorArray
from jitflow.ops.functional_ops import map_fn, scan, foldl, foldr
from jitflow.ops.rnn import reverse_sequence
from jitflow.ops.clip_ops import clip_by_global_norm, global_norm, clip_by_norm
import types as _types

contrib = _types.SimpleNamespace(rnn=nn.contrib_rnn)
from jitflow.ops import while_grad as _while_grad  # noqa: F401 - registers the WhileGrad op
from jitflow.framework import loop_hooks as _loop_hooks  # noqa: F401 - loops and TensorArrays in GraphDefs
from jitflow.ops.debug_ops import (Print, print, Assert, check_numerics, verify_tensor_all_finite, assert_equal,
                                  assert_none_equal, assert_less, assert_less_equal, assert_greater,
                                  assert_greater_equal, assert_positive, assert_negative, assert_non_negative,
                                  assert_non_positive, assert_rank, assert_rank_at_least, assert_type,
                                  is_numeric_tensor, debugging)
from jitflow import layers, losses
from jitflow import metrics
from jitflow.ops.array_ops import newaxis, reverse, reverse_v2, gather_nd, scatter_nd, sequence_mask
from jitflow.explain import explain
from jitflow.codegen.cache import cache_stats
from jitflow import summary
from jitflow import image
from jitflow.image import random_crop, saturate_cast
from jitflow.ops.math_ops import cumsum, cumprod, count_nonzero, norm, eye, reduce_euclidean_norm
from jitflow.ops.random_ops import random_shuffle
from jitflow import app
from jitflow import tf_logging as logging
from jitflow._namespaces import (random, disable_v2_behavior, disable_eager_execution, enable_eager_execution,
                                 enable_v2_behavior, executing_eagerly, compat_namespace as _compat_namespace)
from jitflow.ops import graph_def_ops  # noqa: F401
from jitflow.protos.graph import GraphDef
from jitflow.protos.node_def import NodeDef
from jitflow.protos.attr_value import AttrValue
from jitflow.protos.tensor import TensorProto
from jitflow.protos.meta_graph import MetaGraphDef
from jitflow.protos.summary import Summary
from jitflow.protos.event import Event, SessionLog
from jitflow.framework.importer import import_graph_def
from jitflow.framework.tensor_util import make_tensor_proto, make_ndarray
from jitflow import graph_util
from jitflow import saved_model
from jitflow.graph_runner import run_graph
from jitflow import data
from jitflow.io_namespaces import io, python_io
from jitflow.ops.data_flow_ops import FIFOQueue, RandomShuffleQueue, QueueBase
from jitflow.data import graph_export as _graph_export
from jitflow.ops.io_ops import (ReaderBase, TFRecordReader, TextLineReader, WholeFileReader,
                                FixedLengthRecordReader)
from jitflow.ops.parsing_ops import (parse_example, parse_single_example, FixedLenFeature, VarLenFeature,
                                     FixedLenSequenceFeature, decode_raw)
import sys as _sys
compat = _compat_namespace(_sys.modules[__name__])
from jitflow.ops.compat_ops import arg_max, arg_min
from jitflow.gfile import gfile_v1 as gfile
if "io" not in globals():
    import types as _types
    io = _types.SimpleNamespace()
io.gfile = gfile
from jitflow.ops.case_op import case
from jitflow.ops.script_ops import py_func, numpy_function
from jitflow.ops.special_math import (asinh, acosh, atanh, atan2, rint, erf, erfc, lgamma, digamma, div_no_nan,
                                     log_sigmoid)
from jitflow.ops.segment_ops import (segment_sum, segment_mean, segment_max, segment_min, segment_prod,
                                     unsorted_segment_max, unsorted_segment_min, unsorted_segment_prod,
                                     unsorted_segment_mean, unsorted_segment_sqrt_n, sort, argsort,
                                     confusion_matrix)
math.unsorted_segment_sum = unsorted_segment_sum
from jitflow.ops.nn_extras import space_to_depth, depth_to_space
math.zero_fraction = nn.zero_fraction

from jitflow.kernels.blas_spin import short_spin as _short_spin

_short_spin()  # OpenBLAS's workers sleep ~0.4 ms after a GEMM, not ~80 ms (jitflow/kernels/blas_spin.py)
