"""`tf.saved_model`: TensorFlow's SavedModel format, both ways (re-exports only)."""
# ruff: noqa: F401
import types as _types

from . import builder, loader, signature_def_utils
from .builder import simple_save
from .constants import signature_constants, tag_constants
from .loader import load, maybe_saved_model_directory
from .signature_def_utils import build_signature_def, build_tensor_info, predict_signature_def

utils = _types.SimpleNamespace(build_tensor_info=build_tensor_info)
SERVING = tag_constants.SERVING
TRAINING = tag_constants.TRAINING
