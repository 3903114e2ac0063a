"""Where device values live: variables mirrored on the device, per-run buffers, host/device copies."""
from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

from jitflow.compiler.gpu import runtime  # through the module: tests stand in for its functions
from jitflow.compiler.gpu.runtime import (
    array_device,
    c_order,
    current_device,
    here,
    is_device_array,
    multi_device,
)
from jitflow.compiler.plan import ARENA_SLOT

# -- variables on the device ---------------------------------------------------------------------------


class DeviceVariables(dict):  # type: ignore[type-arg]
    """A session's variable values (name -> read-only host array) with device mirrors synced lazily.

    Host reads of a variable whose device value is newer copy it back first; host writes make the mirror
    stale (it is uploaded again on the next device read).
    """

    def __init__(self, base: dict[str, Any]) -> None:
        super().__init__(base)
        self._mirror: dict[str, tuple[Any, Any]] = {}  # name -> (host array it equals or None, device array)
        self._dirty: set[str] = set()  # device value newer than the host one
        self._lock = threading.RLock()

    # host side
    def _sync(self, name: str) -> None:
        with self._lock:
            if name not in self._dirty:
                return
            dev = self._mirror[name][1]
            host = runtime.to_host(dev)
            host.flags.writeable = False
            dict.__setitem__(self, name, host)
            self._mirror[name] = (host, dev)
            self._dirty.discard(name)

    def sync_all(self) -> None:
        """Copies every variable whose device value is newer back to the host."""
        for name in list(self._dirty):
            self._sync(name)

    def __getitem__(self, name: str) -> Any:
        if self._dirty and name in self._dirty:
            self._sync(name)
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        if self._dirty and name in self._dirty:
            self._sync(name)
        return dict.get(self, name, default)

    def __setitem__(self, name: str, value: Any) -> None:
        with self._lock:
            self._dirty.discard(name)
            dict.__setitem__(self, name, value)

    def __delitem__(self, name: str) -> None:
        with self._lock:
            self._dirty.discard(name)
            self._mirror.pop(name, None)
            dict.__delitem__(self, name)

    def pop(self, name: str, *default: Any) -> Any:
        with self._lock:
            self._sync(name)
            self._mirror.pop(name, None)
            return dict.pop(self, name, *default)

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name in self:
            return self[name]
        self[name] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def clear(self) -> None:
        with self._lock:
            self._dirty.clear()
            self._mirror.clear()
            dict.clear(self)

    def values(self) -> Any:
        self.sync_all()
        return dict.values(self)

    def items(self) -> Any:
        self.sync_all()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self.sync_all()
        return dict(dict.items(self))

    # device side
    def device_value(self, name: str) -> Any:
        """The device array holding the variable's current value (uploaded if stale); None if unset."""
        with self._lock:
            m = self._mirror.get(name)
            if m is not None and multi_device() and array_device(m[1]) != current_device():
                self._sync(name)  # used on another GPU: move it through the host
                m = None
            if name in self._dirty:
                return self._mirror[name][1]
            host = dict.get(self, name)
            if host is None:
                return None
            if m is not None and m[0] is host:
                return m[1]
            dev = runtime.cuda_api().to_device(c_order(host))
            self._mirror[name] = (host, dev)
            return dev

    def device_assign(self, name: str, dev: Any) -> None:
        """Makes device array `dev` the variable's value; the host copy is made when a host step reads it."""
        with self._lock:
            self._mirror[name] = (None, dev)
            self._dirty.add(name)
            if not dict.__contains__(self, name):
                dict.__setitem__(self, name, None)  # the key exists (initialized); the value comes on read

    def is_current(self, name: str, host: Any) -> bool:
        """True when `host` is the variable's current host value (so its device mirror can stand in)."""
        return name not in self._dirty and dict.get(self, name) is host


_install_lock = threading.Lock()


def device_store(ctx: Any) -> DeviceVariables:
    """The session's variables as a `DeviceVariables` (installed on the first CUDA run)."""
    store = ctx.variables
    if type(store) is DeviceVariables:
        return store
    with _install_lock:
        store = ctx.variables
        if type(store) is not DeviceVariables:
            store = DeviceVariables(store)
            ctx.variables = store
    return store


# -- inputs and outputs of CUDA steps ------------------------------------------------------------------


# arena entry of the run's values copied out that CUDA steps also read: (producer, output) -> (host, device)
_PAIRS = "cuda-pairs"


class DeviceIO:
    """How a CUDA step gets its inputs onto the device and where its outputs go."""

    def __init__(self, in_slots: list[int], const_inputs: list[bool], var_reads: list[str | None]) -> None:
        self.in_slots = in_slots
        self.const_inputs = const_inputs  # host input that never changes (a Const): uploaded once
        self.var_reads = var_reads  # input read from this variable's tensor: its mirror stands in
        self.const_cache: dict[int, tuple[Any, Any]] = {}
        self.host_out: list[bool] = []  # per output: fetched or read by a host step
        self.dev_out: list[bool] = []  # per output: read by a CUDA step
        self.owner: Any = None  # the key of the step these outputs belong to
        self.detach: list[bool] = []  # per output: fetched as a device array (it must outlive the run)
        self._detach_pools: dict[int, DevicePool] = {}

    def device_input(self, k: int, v: Any, vals: list, store: DeviceVariables) -> Any:
        """The device array for input k whose slot holds `v` (copied in when it is a host value)."""
        if is_device_array(v):
            return here(v)
        if type(v) is not np.ndarray:
            v = np.asarray(v)
        pairs = vals[ARENA_SLOT].bufs.get(_PAIRS)
        if pairs:
            for host, dev in pairs.values():
                if host is v:
                    return here(dev)
        var = self.var_reads[k]
        if var is not None and store.is_current(var, v):
            return store.device_value(var)
        if self.const_inputs[k]:
            hit = self.const_cache.get(k)
            if hit is not None and hit[0] is v:
                return hit[1]
            dev = runtime.cuda_api().to_device(c_order(v))
            self.const_cache[k] = (v, dev)
            return dev
        return runtime.cuda_api().to_device(c_order(v))

    def put_output(self, j: int, slot: int, dev: Any, vals: list) -> None:
        """Writes output j (a device array) into its slot: on the host, the device, or both."""
        if slot < 0:
            return
        if self.host_out[j]:
            host = runtime.to_host(dev)
            vals[slot] = host
            if self.dev_out[j]:
                vals[ARENA_SLOT].bufs.setdefault(_PAIRS, {})[(self.owner, j)] = (host, dev)
        else:
            vals[slot] = dev
            if self.detach and self.detach[j]:
                self._detached(j, dev, vals)

    def _detached(self, j: int, dev: Any, vals: list) -> None:
        """Output j leaves the run as a device array: the arena gets another buffer for the next run
        (from a pool that reuses those nobody holds any more), so the fetched one is never overwritten."""
        bufs = vals[ARENA_SLOT].bufs
        key = (self.owner, j)
        if bufs.get(key) is dev:
            pool = self._detach_pools.setdefault(j, DevicePool())
            bufs[key] = pool.get(tuple(dev.shape), dev.dtype)


def device_buffer(vals: list, key: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
    """A device array of the run's arena, reused across runs (reallocated when the shape changes)."""
    bufs = vals[ARENA_SLOT].bufs
    b = bufs.get(key)
    if b is None or tuple(b.shape) != shape or b.dtype != dtype:
        b = runtime.cuda_api().device_array(shape, dtype)
        bufs[key] = b
    return b


def flat(a: Any) -> Any:
    """A 1-D view of a C-contiguous device array (kernels index flat arrays)."""
    return a if len(a.shape) == 1 else a.reshape(a.size)


class DevicePool:
    """Device arrays given out as variable values, taken back once nothing references them.

    A variable update writes a new array (earlier reads of the variable may still be in use in this run);
    the array it replaced is free again once the run that read it is over. Reference counts tell.
    """

    KEEP = 3
    _free_refs: int | None = None

    def __init__(self) -> None:
        self.pool: list[Any] = []
        self.lock = threading.Lock()

    def get(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """A device array of `shape` and `dtype` that nobody else references."""
        free = self._free()
        with self.lock:
            for k in range(len(self.pool)):  # not enumerate: its reused tuple would hold a reference
                a = self.pool[k]
                if sys.getrefcount(a) <= free and tuple(a.shape) == shape and a.dtype == dtype:
                    del self.pool[k]
                    break
            else:
                a = runtime.cuda_api().device_array(shape, dtype)
            self.pool.append(a)
            if len(self.pool) > self.KEEP:
                del self.pool[0]
            return a

    @classmethod
    def _free(cls) -> int:
        if cls._free_refs is None:
            probe = [runtime.cuda_api().device_array(1, np.float32)]
            cls._free_refs = sys.getrefcount(probe[0]) + 1  # + the loop variable that looks at it
        return cls._free_refs


def host_inputs(in_slots: list[int], vals: list) -> None:
    """Replaces device arrays in `in_slots` by host copies (before running interpreted steps)."""
    for s in in_slots:
        if s >= 0 and is_device_array(vals[s]):
            vals[s] = runtime.to_host(vals[s])
