"""`tf.saved_model.signature_def_utils` and `utils.build_tensor_info`: SignatureDefs of a graph's tensors."""
from __future__ import annotations

from typing import Any

from jitflow.framework import tensor_util
from jitflow.framework.graph import Tensor
from jitflow.protos.meta_graph import SignatureDef, TensorInfo

from .constants import signature_constants


def build_tensor_info(tensor: Any) -> TensorInfo:
    """The TensorInfo (name, dtype, shape) of a graph tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"build_tensor_info expects a Tensor, got {type(tensor).__name__}")
    shape = tensor.shape.as_list() if tensor.shape.ndims is not None else None
    return TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum,
                      tensor_shape=tensor_util.shape_proto(shape))


def build_signature_def(inputs: dict[str, TensorInfo] | None = None,
                        outputs: dict[str, TensorInfo] | None = None, method_name: str | None = None) -> SignatureDef:
    """A SignatureDef from TensorInfos by key."""
    sig = SignatureDef(method_name=method_name or "")
    for key, info in (inputs or {}).items():
        sig.inputs[key].CopyFrom(info)
    for key, info in (outputs or {}).items():
        sig.outputs[key].CopyFrom(info)
    return sig


def predict_signature_def(inputs: dict[str, Any], outputs: dict[str, Any]) -> SignatureDef:
    """A predict SignatureDef of tensors by key (ValueError when either side is empty)."""
    if not inputs:
        raise ValueError("Prediction inputs cannot be None or empty.")
    if not outputs:
        raise ValueError("Prediction outputs cannot be None or empty.")
    return build_signature_def({k: build_tensor_info(t) for k, t in inputs.items()},
                               {k: build_tensor_info(t) for k, t in outputs.items()},
                               signature_constants.PREDICT_METHOD_NAME)


def is_valid_signature(signature_def: SignatureDef) -> bool:
    """True when the SignatureDef names a method and has outputs."""
    return bool(signature_def.method_name) and len(signature_def.outputs) > 0
