"""`Session` and `InteractiveSession`: normalize fetches and feeds, find or build the plan, run it.

Session.run strings the stages together: prune → (cluster → codegen) → plan → execute. A plan is built
once per run signature (fetches, feed keys, feed dtypes and ranks) and replayed afterwards.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jitflow import dtypes, errors, flags
from jitflow.compiler.execute import execute
from jitflow.compiler.plan import Plan, build_plan
from jitflow.framework.dead_value import DEAD
from jitflow.framework.graph import Graph, Operation, Tensor, get_default_graph
from jitflow.framework.tensor_shape import shape_str
from jitflow.ops.constant_op import to_numpy
from jitflow.session_config import ConfigProto

# -- the default session ----------------------------------------------------------------------------------


class _DefaultSessionStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[Session] = []


_default_sessions = _DefaultSessionStack()


def get_default_session() -> Session | None:
    """The innermost session installed by `with sess:` / `sess.as_default()` in this thread."""
    return _default_sessions.stack[-1] if _default_sessions.stack else None


def _session_for_eval(session: Any, graph: Graph, what: str) -> Session:
    sess = session if session is not None else get_default_session()
    if sess is None:
        raise ValueError(f"Cannot evaluate tensor using `{what}()`: No default session is registered. Use "
                         f"`with sess.as_default()` or pass an explicit session to `{what}(session=sess)`")
    if sess.graph is not graph:
        raise ValueError(f"Cannot use the given session to {what} tensor: the tensor's graph is different "
                         "from the session's graph.")
    return sess


# -- fetch structures -------------------------------------------------------------------------------------

Rebuild = Callable[[list[Any]], Any]


def _flatten_fetches(graph: Graph, fetches: Any, flat: list[Tensor | Operation]) -> Rebuild:
    """Appends the graph elements of `fetches` to `flat`; returns a function rebuilding the structure."""
    if fetches is None:
        raise TypeError(f"Fetch argument {fetches!r} has invalid type {type(fetches)}")
    if isinstance(fetches, (Tensor, Operation, str)) or hasattr(fetches, "_as_graph_element"):
        try:
            el = graph.as_graph_element(fetches, allow_tensor=True, allow_operation=True)
        except TypeError as e:
            raise TypeError(f"Fetch argument {fetches!r} has invalid type {type(fetches)}, must be a string "
                            f"or Tensor. ({e})") from None
        except (KeyError, ValueError) as e:
            raise ValueError(f"Fetch argument {fetches!r} cannot be interpreted as a Tensor. ({e})") \
                from None
        i = len(flat)
        flat.append(el)
        return lambda vals: vals[i]
    if isinstance(fetches, dict):
        keys = list(fetches.keys())
        subs = [_flatten_fetches(graph, fetches[k], flat) for k in keys]
        cls = type(fetches)

        def rebuild_dict(vals: list[Any]) -> Any:
            d = {k: f(vals) for k, f in zip(keys, subs)}
            try:
                return cls(d) if cls is not dict else d
            except TypeError:
                return d

        return rebuild_dict
    if isinstance(fetches, (list, tuple)):
        subs = [_flatten_fetches(graph, x, flat) for x in fetches]
        if isinstance(fetches, tuple) and hasattr(fetches, "_fields"):
            cls_nt = type(fetches)
            return lambda vals: cls_nt(*[f(vals) for f in subs])
        if isinstance(fetches, tuple):
            return lambda vals: tuple(f(vals) for f in subs)
        return lambda vals: [f(vals) for f in subs]
    raise TypeError(f"Fetch argument {fetches!r} has invalid type {type(fetches)}, must be a string or Tensor. "
                    f"(Can not convert a {type(fetches).__name__} into a Tensor or Operation.)")


def _to_result(v: Any, t: Tensor | Operation) -> Any:
    """A fetched value as the user gets it: an array they own, or a NumPy scalar for rank 0."""
    if type(v) is np.ndarray:
        if not v.flags.writeable:
            v = v.copy()
        return v[()] if v.ndim == 0 else v
    if isinstance(v, np.generic) and isinstance(t, Tensor) and v.dtype == t.dtype.np:
        return v  # already what the conversion below would give
    if v is None:
        return None
    if v is DEAD:
        raise errors.InvalidArgumentError(None, t.op if isinstance(t, Tensor) else t,
                                          f"Retval for {t.name} does not have value: it was computed on a "
                                          "branch of tf.cond that was not taken")
    if type(v) is not np.ndarray:
        v = np.asarray(v, dtype=t.dtype.np) if isinstance(t, Tensor) else np.asarray(v)
    elif not v.flags.writeable:
        v = v.copy()
    if v.ndim == 0:
        return v[()]
    return v


def _simple_fetches(fetches: Any) -> bool:
    """A graph element or a flat list/tuple of them: calls shaped like this take the fast path."""
    el = (Tensor, Operation, str)
    if isinstance(fetches, el):
        return True
    return type(fetches) in (list, tuple) and all(isinstance(f, el) for f in fetches)


class _FastRun:
    """A cached call shape: its plan, fetch structure, and per-feed conversion rules.

    Keyed by the ids of the fetch objects and feed keys (a list's elements, not the list), which
    `keep` holds so that those ids cannot be reused by other objects while the entry exists.
    """

    __slots__ = ("plan", "flat", "rebuild", "rules", "single", "keep")

    def __init__(self, plan: Plan, flat: list[Tensor | Operation], rebuild: Rebuild, feeds: list[Tensor],
                 values: list[np.ndarray], keep: Any) -> None:
        self.keep = keep
        self.plan = plan
        self.flat = flat
        self.rebuild = rebuild
        self.single = len(flat) == 1 and not isinstance(keep[0], (list, tuple))
        # per feed: (numpy dtype, plan rank, static dims or None when any size goes)
        self.rules = []
        for t, v in zip(feeds, values):
            dims = t.shape.as_tuple()
            self.rules.append((t.dtype.np, v.ndim, tuple(dims) if dims is not None else None,
                               dims is not None and None not in dims))

    def convert(self, feed_dict: Any) -> list[np.ndarray] | None:
        """The feed arrays, or None when a value needs the general path (or its exact error)."""
        out = []
        if feed_dict:
            for v, (dt, rank, dims, exact) in zip(feed_dict.values(), self.rules):
                if dt.kind == "O":
                    return None  # strings: the general conversion (to bytes) applies
                tv = type(v)
                if tv is np.ndarray and v.dtype == dt:
                    arr = v
                elif tv is float or tv is int or tv is bool or tv is np.ndarray or isinstance(v, np.generic):
                    try:
                        arr = np.asarray(v, dt)
                    except (TypeError, ValueError, OverflowError):
                        return None
                else:
                    return None
                if arr.ndim != rank:
                    return None
                if dims is not None:
                    if exact:
                        if arr.shape != dims:
                            return None
                    elif any(d is not None and d != n for d, n in zip(dims, arr.shape)):
                        return None
                out.append(arr)
        return out

    def finish(self, raw: list[Any]) -> Any:
        if self.single:  # one fetch, not in a list: the result is the value itself
            return _to_result(raw[0], self.flat[0])
        return self.rebuild([_to_result(v, t) for v, t in zip(raw, self.flat)])


# -- the session ----------------------------------------------------------------------------------------------


class Session:
    """Runs graph elements with its own variable values. Thread-safe: many threads may call `run`."""

    def __new__(cls, target: str = "", *args: Any, **kwargs: Any) -> Session:
        if target and cls is Session:  # a tf.train.Server's target: a session of a distributed task
            from jitflow.distributed.remote_session import session_class_for

            cls = session_class_for(target)
        return super().__new__(cls)

    def __init__(self, target: str = "", graph: Graph | None = None, config: ConfigProto | None = None) -> None:
        self._graph = graph if graph is not None else get_default_graph()
        self._config = config if config is not None else ConfigProto()
        self._closed = False
        self._target = target
        # Session state, read by kernels through the ctx argument (this object).
        self.variables: dict[str, np.ndarray] = {}
        self.rngs: dict[str, Any] = {}
        # Per-session state of input pipelines and queues (anything with close()), closed with the session.
        self.resources: dict[str, Any] = {}
        self._plans: dict[Any, Plan] = {}
        self._fast: dict[Any, _FastRun] = {}
        self._lock = threading.RLock()
        self._default_cms: list[Any] = []

    # -- properties -----------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def graph_def(self) -> Any:
        return self._graph

    @property
    def sess_str(self) -> str:
        return self._target

    @property
    def config(self) -> ConfigProto:
        return self._config

    def list_devices(self) -> list[str]:
        """Names of the devices this session can place ops on."""
        from jitflow.compiler.placement import gpu_count

        return ["/job:localhost/replica:0/task:0/device:CPU:0"] + [
            f"/job:localhost/replica:0/task:0/device:GPU:{i}" for i in range(gpu_count())]

    # -- lifetime -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Frees the session's state; later runs raise RuntimeError."""
        self._closed = True
        resources, self.resources = self.resources, {}
        for r in resources.values():
            r.close()
        self.variables = {}
        self.rngs = {}
        self._plans = {}
        self._fast = {}

    def __del__(self) -> None:
        self._closed = True

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Session]:
        """Makes this the default session (for `Tensor.eval`/`Operation.run`) inside a `with` block."""
        _default_sessions.stack.append(self)
        try:
            yield self
        finally:
            if _default_sessions.stack and _default_sessions.stack[-1] is self:
                _default_sessions.stack.pop()
            elif self in _default_sessions.stack:
                _default_sessions.stack.remove(self)

    def __enter__(self) -> Session:
        g_cm = self._graph.as_default()
        s_cm = self.as_default()
        g_cm.__enter__()
        s_cm.__enter__()
        self._default_cms.append((g_cm, s_cm))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._default_cms:
            g_cm, s_cm = self._default_cms.pop()
            s_cm.__exit__(exc_type, exc, tb)
            g_cm.__exit__(exc_type, exc, tb)
        self.close()

    # -- variable store (used by the Saver and Variable.load) ----------------------------------------
    def _read_variables(self, names: list[str]) -> list[np.ndarray]:
        """Current values of the named variables (read-only arrays); FailedPreconditionError if unset."""
        self._check_open()
        out = []
        for n in names:
            v = self.variables.get(n)
            if v is None:
                op = None
                try:
                    op = self._graph.get_operation_by_name(n)
                except KeyError:
                    pass
                raise errors.FailedPreconditionError(None, op, f"Attempting to use uninitialized value {n}")
            out.append(v)
        return out

    def _write_variables(self, values: dict[str, np.ndarray], owned: bool = False) -> None:
        """Sets variables (op name → value); the session keeps read-only arrays.

        With `owned=True` the caller hands over arrays nobody else references (a restore's freshly read
        buffers), so they are kept without a copy.
        """
        self._check_open()
        for n, v in values.items():
            arr = v if owned and type(v) is np.ndarray else np.array(v, copy=True)
            arr.flags.writeable = False
            self.variables[n] = arr

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")

    # -- run ------------------------------------------------------------------------------------------
    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        """Computes `fetches` (any nesting of tensors, ops, variables or names) given `feed_dict`."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        # The hot path: a call shaped like an earlier one (same fetches, same feed keys in the same
        # order) skips fetch flattening, key conversion and plan lookup.
        tf_ = type(fetches)
        fkey: Any = (tf_, tuple(map(id, fetches)) if tf_ is list or tf_ is tuple else id(fetches),
                     tuple(map(id, feed_dict)) if feed_dict else ())
        fast = self._fast.get(fkey)
        if fast is not None:
            feed_values = fast.convert(feed_dict)
            if feed_values is not None:
                return fast.finish(execute(fast.plan, self, feed_values))
        flat: list[Tensor | Operation] = []
        rebuild = _flatten_fetches(self._graph, fetches, flat)
        feed_tensors, feed_values = self._convert_feeds(feed_dict)
        key = (tuple(flat), tuple(feed_tensors), tuple((v.dtype.str, v.ndim) for v in feed_values))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._build(key, flat, feed_tensors)
        if _simple_fetches(fetches) and not self._closed:
            if len(self._fast) > 256:
                self._fast.clear()
            # the entry keeps the fetch and feed-key objects alive, so the ids in its key stay theirs
            self._fast[fkey] = _FastRun(plan, flat, rebuild, feed_tensors, feed_values,
                                        (fetches, tuple(fetches) if isinstance(fetches, (list, tuple)) else (),
                                         tuple(feed_dict) if feed_dict else ()))
        raw = execute(plan, self, feed_values)
        return rebuild([_to_result(v, t) for v, t in zip(raw, flat)])

    def _build(self, key: Any, flat: list[Tensor | Operation], feeds: list[Tensor]) -> Plan:
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                self._check_placement(flat, feeds)
                plan = build_plan(flat, feeds, self._lowering())
                self._plans[key] = plan
                _record_plan(plan)
            return plan

    def _lowering(self) -> Any:
        """The compiler stage for this session's plans, or None to interpret everything."""
        if not flags.jit_enabled() or not getattr(self._config, "jit", True):
            return None
        from jitflow.compiler.lower import lower

        return lower

    def _check_placement(self, flat: list[Tensor | Operation], feeds: list[Tensor]) -> None:
        from jitflow.compiler.placement import check_placement

        check_placement(flat, feeds, self._config, self._target)

    def _convert_feeds(self, feed_dict: Any) -> tuple[list[Tensor], list[np.ndarray]]:
        if not feed_dict:
            return [], []
        tensors: list[Tensor] = []
        values: list[np.ndarray] = []
        for key, value in feed_dict.items():
            try:
                t = self._graph.as_graph_element(key, allow_tensor=True, allow_operation=False)
            except (TypeError, ValueError, KeyError) as e:
                raise TypeError(f"Cannot interpret feed_dict key as Tensor: {e}") from None
            if isinstance(value, (Tensor, Operation)) or hasattr(value, "_as_tensor"):
                raise TypeError(f"The value of a feed cannot be a tf.Tensor object. Acceptable feed values "
                                f"include Python scalars, strings, lists, numpy ndarrays, or TensorHandles. "
                                f"For reference, the tensor object was {value} which was passed to the "
                                f"feed with key {t}.")
            arr = self._feed_array(t, value)
            tensors.append(t)
            values.append(arr)
        return tensors, values

    @staticmethod
    def _feed_array(t: Tensor, value: Any) -> np.ndarray:
        dt = t.dtype
        if type(value) is np.ndarray and value.dtype is dt.np:
            arr = value
        elif dt is dtypes.string:
            arr = to_numpy(value, dt, f"the feed of {t.name}")
        else:
            try:
                arr = np.asarray(value, dtype=dt.np)
            except (TypeError, ValueError) as e:
                raise ValueError(f"Cannot feed value {value!r} for Tensor '{t.name}' of dtype {dt.name}: "
                                 f"{e}") from None
        dims = t.shape.as_tuple()
        if dims is not None and (len(dims) != arr.ndim or any(
                d is not None and d != s for d, s in zip(dims, arr.shape))):
            raise ValueError(f"Cannot feed value of shape {arr.shape} for Tensor '{t.name}', which has shape "
                             f"{shape_str(dims).replace('?', 'None')}")
        return arr

    def make_callable(self, fetches: Any, feed_list: Any = None, accept_options: bool = False) -> Any:
        """A function `f(*feed_values)` equivalent to `run(fetches, dict(zip(feed_list, feed_values)))`."""
        feed_list = list(feed_list or [])

        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) != len(feed_list):
                raise ValueError(f"Expected {len(feed_list)} feed values, got {len(args)}")
            return self.run(fetches, dict(zip(feed_list, args)))

        return call

    def partial_run_setup(self, fetches: Any, feeds: Any = None) -> Any:
        raise errors.UnimplementedError(None, None, "partial_run is not supported by jitflow")


class InteractiveSession(Session):
    """A session that installs itself as the default session (and its graph as default) on creation."""

    def __init__(self, target: str = "", graph: Graph | None = None, config: ConfigProto | None = None) -> None:
        super().__init__(target, graph, config)
        self._g_cm = self._graph.as_default()
        self._s_cm = self.as_default()
        self._g_cm.__enter__()
        self._s_cm.__enter__()
        self._installed = True

    def close(self) -> None:
        if getattr(self, "_installed", False):
            self._installed = False
            self._s_cm.__exit__(None, None, None)
            self._g_cm.__exit__(None, None, None)
        super().close()


# -- plan recording for `jitflow explain` ---------------------------------------------------------------------

_recorded: list[Plan] = []


def _record_plan(plan: Plan) -> None:
    if flags.explain_record():
        _recorded.append(plan)


def recorded_plans() -> list[Plan]:
    """Plans built in this process while JITFLOW_EXPLAIN_RECORD=1."""
    return list(_recorded)
