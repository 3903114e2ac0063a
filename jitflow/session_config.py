"""`tf.ConfigProto` and friends: session options, accepted as TF spells them."""
from __future__ import annotations

from typing import Any


class _Options:
    """A plain attribute bag that accepts TF's keyword arguments."""

    _defaults: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        for k, v in self._defaults.items():
            setattr(self, k, v() if callable(v) else v)
        for k, v in kwargs.items():
            if k not in self._defaults:
                raise ValueError(f"{type(self).__name__} has no field named '{k}'")
            setattr(self, k, v)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._defaults)
        return f"{type(self).__name__}({fields})"


class GPUOptions(_Options):
    _defaults = {"allow_growth": False, "per_process_gpu_memory_fraction": 0.0, "visible_device_list": "",
                 "force_gpu_compatible": False}


class OptimizerOptions(_Options):
    _defaults = {"opt_level": 0, "do_common_subexpression_elimination": False,
                 "do_constant_folding": False, "global_jit_level": 0}
    DEFAULT = 0
    OFF = -1
    ON_1 = 1
    ON_2 = 2
    L0 = -1
    L1 = 0


class GraphOptions(_Options):
    _defaults = {"optimizer_options": OptimizerOptions, "enable_bfloat16_sendrecv": False,
                 "build_cost_model": 0, "place_pruned_graph": False, "infer_shapes": False}


class ConfigProto(_Options):
    """Session configuration. `allow_soft_placement` (default False, as TF: an op placed on a missing GPU
    is an error; True runs it on the CPU) and `log_device_placement` are honoured; `jit=False` is
    jitflow's switch to interpret."""

    _defaults = {"allow_soft_placement": False, "log_device_placement": False, "device_count": dict,
                 "intra_op_parallelism_threads": 0, "inter_op_parallelism_threads": 0,
                 "use_per_session_threads": False, "gpu_options": GPUOptions, "graph_options": GraphOptions,
                 "operation_timeout_in_ms": 0, "isolate_session_state": False, "jit": True}


class RunOptions(_Options):
    _defaults = {"trace_level": 0, "timeout_in_ms": 0, "output_partition_graphs": False,
                 "report_tensor_allocations_upon_oom": False}
    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3


class RunMetadata(_Options):
    _defaults = {"step_stats": None, "cost_graph": None, "partition_graphs": list}
