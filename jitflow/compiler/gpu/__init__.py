"""The CUDA backend of a plan: CUDA steps, variables mirrored on the device, and the transfers between.

Modules: `backend` (`CudaBackend`, the `compiler/backend.py` interface), `runtime` (numba.cuda, the
compile target, devices), `memory` (device variables, buffer pools, copies), `steps` (the CUDA steps),
`rewrite` (`lower_gpu_clusters`, the pass that puts them in a plan).

`lower_gpu_clusters(plan)` runs at the end of `compiler/lower.py`'s `lower`, as the CUDA backend's
`place`. It replaces the compiled steps whose ops are placed on an available GPU (`/gpu:N`,
`/device:GPU:N`, see `compiler/placement.py`) by CUDA steps (kernels of `codegen/cuda.py`, through the
content-keyed cache): clusters (`CudaClusterStep`), MatMul (`CudaMatMulStep`, or `FusedMatMulStep` with
the elementwise cluster that alone reads it) and sparse softmax cross-entropy (`CudaSparseXentStep`).
Reads of variables consumed only on the device become `DeviceReadStep`s; Identity,
Reshape/ExpandDims/Squeeze and run-time UnbroadcastTo pass device arrays through; Shape/Size/Rank read
only shapes. Steps of ops on /gpu:N with N > 0 run with device N current.
Without numba-cuda (or Numba's bundled numba.cuda), a GPU or the simulator, nothing changes: those ops
stay on the CPU (soft placement).

Where values live
-----------------
* Variables: the session's ``variables`` dict becomes a `DeviceVariables` on the first CUDA run. It keeps
  a device array per variable; a CUDA update writes the device array (in place when the kernel reads and
  writes each element at the same point and no snapshot of the variable is read later in the run, else
  into a pooled array) and marks the host value stale; any host read (interpreted ops, CPU kernels, the
  Saver) copies it back first. Variables thus stay on the device between runs.
* Feeds and other host values are copied in when a CUDA step reads them; constants once per step.
* A CUDA step's output goes to the host only when it is fetched or read by a host step; otherwise the
  slot holds the device array and the next CUDA step reads it there: no round trip through the host
  within a run of GPU clusters. A value needed on both sides is copied out once and its device array is
  remembered for the CUDA readers.
* A CUDA step whose shapes do not check out, or whose kernel flags an error, runs its members
  interpreted on host copies of its inputs, exactly as the CPU `ClusterStep` does; a cluster with a node
  that has no device lowering keeps its CPU kernel (and its report says why).
"""
from __future__ import annotations

from jitflow.compiler.gpu.memory import DevicePool, DeviceVariables
from jitflow.compiler.gpu.rewrite import lower_gpu_clusters
from jitflow.compiler.gpu.runtime import OnDevice, cuda_api, simulated, target, to_host
from jitflow.compiler.gpu.steps import CudaClusterStep, CudaMatMulStep, CudaSparseXentStep, FusedMatMulStep

__all__ = ["CudaClusterStep", "CudaMatMulStep", "CudaSparseXentStep", "DevicePool", "DeviceVariables",
           "FusedMatMulStep", "OnDevice", "cuda_api", "lower_gpu_clusters", "simulated", "target", "to_host"]
