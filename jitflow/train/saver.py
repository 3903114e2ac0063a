"""`tf.train.Saver`: saves and restores variables as TensorFlow V2 checkpoints.

Values move straight between the session's variable store and the checkpoint files (no graph ops
run), so saving and restoring cost about as much as the file I/O itself. A save is crash-safe: the
bundle is committed by renaming its index last, the `checkpoint` state file is replaced atomically
after that, and old checkpoints are deleted only once the new one is recorded.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from jitflow import dtypes
from jitflow.errors import InvalidArgumentError, NotFoundError
from jitflow.framework.graph import Graph, GraphKeys, Tensor, get_default_graph
from jitflow.framework.tensor_shape import shape_str

from . import checkpoint as ckpt
from . import meta_graph
from .checkpoint import atomic
from .checkpoint.bundle import BundleReader, write_bundle

logger = logging.getLogger("jitflow.train")

V1 = 1
V2 = 2


_MISSING_KEY = ("Restoring from checkpoint failed. This is most likely due to a Variable name or other graph "
                "key that is missing from the checkpoint. Please ensure that you have not altered the graph "
                "expected based on the checkpoint. Original error:\n\nKey {key} not found in checkpoint")
_SHAPE_MISMATCH = ("Restoring from checkpoint {prefix} failed. This is most likely due to a mismatch between "
                   "the current graph and the graph from the checkpoint. Assign requires shapes of both "
                   "tensors to match. Variable {var} (key {key}): lhs shape= {lhs} rhs shape= {rhs}")


class _Saveable:
    """One checkpoint entry: the key it is stored under and the variable op that holds it."""

    __slots__ = ("key", "op_name", "dtype", "shape", "variable")

    def __init__(self, key: str, variable: Any) -> None:
        ref = getattr(variable, "_variable", variable)  # a Variable's VariableV2 output
        if not isinstance(ref, Tensor) or ref.op.type != "VariableV2":
            raise TypeError(f"Saver can only save variables, got {variable!r} for key {key!r}")
        self.key = key
        self.variable = variable
        self.op_name = ref.op.name
        self.dtype: dtypes.DType = ref.dtype
        self.shape = ref.op.attrs.get("shape", ref.shape)


def _op_name(v: Any) -> str:
    op = getattr(v, "op", None)
    if op is None:
        raise TypeError(f"Variable to save is not a Variable: {v!r}")
    return str(op.name)


def _saveables(var_list: Any) -> list[_Saveable]:
    if isinstance(var_list, dict):
        items = []
        for key, v in var_list.items():
            if not isinstance(key, str):
                raise TypeError(f"Saver var_list keys must be strings, got {key!r}")
            items.append((key, v))
    else:
        if isinstance(var_list, (str, bytes)) or not isinstance(var_list, Iterable):
            raise TypeError(f"Saver var_list must be a list or a dict, got {type(var_list).__name__}")
        items = [(_op_name(v), v) for v in var_list]
    seen: dict[str, _Saveable] = {}
    ops: set[str] = set()
    for key, v in items:
        if key in seen:
            raise ValueError(f"At least two variables have the same name: {key}")
        seen[key] = _Saveable(key, v)
        if seen[key].op_name in ops:  # one variable under two keys: the restore would be ambiguous
            raise ValueError(f"The same saveable will be restored with two names: {key}")
        ops.add(seen[key].op_name)
    return list(seen.values())


def _resolve_var_list(d: Any, variables: dict[str, Any], import_scope: str | None) -> dict[str, Any]:
    """The var_list of a `saver_def`: checkpoint key -> Variable (or VariableV2 tensor) in the graph."""
    if not isinstance(d, dict) or not isinstance(d.get("var_list"), dict):
        raise TypeError(f"saver_def must be the dict of a Saver's `saver_def`, got {type(d).__name__}")
    g = get_default_graph()
    out: dict[str, Any] = {}
    for key, op_name in d["var_list"].items():
        scoped = f"{import_scope.rstrip('/')}/{op_name}" if import_scope else str(op_name)
        v = variables.get(scoped)
        out[str(key)] = v if v is not None else g.get_tensor_by_name(scoped + ":0")
    return out


def _options_from_def(d: dict[str, Any]) -> dict[str, Any]:
    return {"reshape": bool(d.get("reshape", False)), "sharded": bool(d.get("sharded", False)),
            "max_to_keep": int(d.get("max_to_keep", 5) or 0),
            "keep_checkpoint_every_n_hours": float(d.get("keep_checkpoint_every_n_hours", 10000.0)),
            "allow_empty": bool(d.get("allow_empty", False)) or not d.get("var_list"),
            "pad_step_number": bool(d.get("pad_step_number", False)),
            "save_relative_paths": bool(d.get("save_relative_paths", False))}


def _graph_signature(graph: Graph, saver_def: dict[str, Any]) -> tuple:
    """Changes whenever an export of `graph` could: ops, control edges, collections, seed, Saver."""
    collections = tuple((k, tuple(id(x) for x in graph.get_collection(k)))
                        for k in sorted(graph.get_all_collection_keys()))
    return (id(graph), len(graph.get_operations()), graph.version, graph.seed, collections, repr(saver_def))


def _raw_session(sess: Any) -> Any:
    """The Session behind a MonitoredSession-style wrapper."""
    while not hasattr(sess, "_read_variables") and hasattr(sess, "_tf_sess"):
        sess = sess._tf_sess()
    if not hasattr(sess, "_read_variables"):
        raise TypeError(f"'sess' must be a Session; {sess!r}")
    return sess


class Saver:
    """Saves and restores variables (`var_list`: a list, keyed by op names, or a dict key → variable)."""

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False,
                 max_to_keep: int = 5,
                 keep_checkpoint_every_n_hours: float = 10000.0, name: str | None = None,
                 restore_sequentially: bool = False, saver_def: Any = None, builder: Any = None,
                 defer_build: bool = False, allow_empty: bool = False, write_version: int = V2,
                 pad_step_number: bool = False, save_relative_paths: bool = False,
                 filename: str | None = None) -> None:
        if defer_build and var_list is not None:
            raise ValueError("If `var_list` is provided then build cannot be deferred. Either set "
                             "defer_build=False or var_list=None.")
        if write_version != V2:
            logger.warning("Only V2 checkpoints are written; write_version=%s ignored", write_version)
        if saver_def is not None:  # rebuild a Saver described by another one's `saver_def`
            g = get_default_graph()
            known = {v.op.name: v for v in g.get_collection(GraphKeys.GLOBAL_VARIABLES)
                     + g.get_collection(GraphKeys.LOCAL_VARIABLES)}
            var_list = _resolve_var_list(saver_def, known, None)
            opts = _options_from_def(saver_def)
            reshape, sharded, max_to_keep = opts["reshape"], opts["sharded"], opts["max_to_keep"]
            keep_checkpoint_every_n_hours = opts["keep_checkpoint_every_n_hours"]
            allow_empty, pad_step_number = opts["allow_empty"], opts["pad_step_number"]
            save_relative_paths = opts["save_relative_paths"]
        self._var_list = var_list
        self._reshape = reshape
        self._sharded = sharded
        self._max_to_keep = max_to_keep
        self._keep_every_n_hours = keep_checkpoint_every_n_hours
        self._name = name
        self._allow_empty = allow_empty
        self._pad_step_number = pad_step_number
        self._save_relative_paths = save_relative_paths
        self._filename = filename
        self._graph: Graph = get_default_graph()
        self._saveables: list[_Saveable] | None = None
        self._is_empty = False
        self._last_checkpoints: list[tuple[str, float]] = []
        self._checkpoints_to_be_deleted: list[tuple[str, float]] = []
        self._next_checkpoint_time = time.time() + keep_checkpoint_every_n_hours * 3600
        self._lock = threading.Lock()
        self._last_meta: tuple[tuple, str] | None = None  # (graph signature, file) of the last export
        if not defer_build:
            self.build()

    # -- building ---------------------------------------------------------------------------------------
    def build(self) -> None:
        """Resolves the variables to save (all global variables when no `var_list` was given)."""
        if self._saveables is not None:
            return
        var_list = self._var_list
        if var_list is None:
            var_list = self._graph.get_collection(GraphKeys.GLOBAL_VARIABLES) + \
                self._graph.get_collection(GraphKeys.SAVEABLE_OBJECTS)
        saveables = _saveables(var_list)
        if not saveables:
            if not self._allow_empty:
                raise ValueError("No variables to save")
            self._is_empty = True
        self._saveables = saveables

    def _built(self) -> list[_Saveable]:
        if self._saveables is None:
            self.build()
        assert self._saveables is not None
        return self._saveables

    @property
    def saver_def(self) -> dict[str, Any]:
        """The data needed to rebuild this Saver after `import_meta_graph`."""
        return {"version": V2, "var_list": {s.key: s.op_name for s in self._built()},
                "max_to_keep": self._max_to_keep,
                "keep_checkpoint_every_n_hours": self._keep_every_n_hours, "sharded": self._sharded,
                "pad_step_number": self._pad_step_number, "save_relative_paths": self._save_relative_paths,
                "allow_empty": self._allow_empty, "reshape": self._reshape}

    def as_saver_def(self) -> dict[str, Any]:
        return self.saver_def

    @classmethod
    def _from_saver_def(cls, d: dict[str, Any], variables: dict[str, Any], import_scope: str | None) -> Saver:
        return cls(_resolve_var_list(d, variables, import_scope), **_options_from_def(d))

    # -- checkpoint bookkeeping -------------------------------------------------------------------------
    @property
    def last_checkpoints(self) -> list[str]:
        """Checkpoints this Saver still keeps, oldest first."""
        return [p for p, _ in self._last_checkpoints]

    def set_last_checkpoints(self, last_checkpoints: list[str]) -> None:
        self._last_checkpoints = [(p, time.time()) for p in last_checkpoints]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: list[tuple[str, float]]) -> None:
        self._last_checkpoints = list(last_checkpoints_with_time)

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        """Adopts existing checkpoints (e.g. after a restart) so that max_to_keep applies to them."""
        kept = []
        for p in checkpoint_paths:
            with contextlib.suppress(OSError):
                kept.append((p, os.path.getmtime(p + ".index")))
        self.set_last_checkpoints_with_time(kept)

    def _record_last_checkpoint(self, path: str) -> None:
        if not self._max_to_keep:
            return
        self._last_checkpoints = [(p, t) for p, t in self._last_checkpoints if p != path]
        self._last_checkpoints.append((path, time.time()))
        while len(self._last_checkpoints) > self._max_to_keep:
            self._checkpoints_to_be_deleted.append(self._last_checkpoints.pop(0))

    def _delete_old_checkpoints(self, meta_graph_suffix: str) -> None:
        while self._checkpoints_to_be_deleted:
            path, stamp = self._checkpoints_to_be_deleted.pop(0)
            if stamp > self._next_checkpoint_time:  # kept: one every keep_checkpoint_every_n_hours
                self._next_checkpoint_time += self._keep_every_n_hours * 3600
                continue
            ckpt.remove_checkpoint(path, meta_graph_suffix=meta_graph_suffix)

    # -- save / restore ---------------------------------------------------------------------------------
    def save(self, sess: Any, save_path: str, global_step: Any = None, latest_filename: str | None = None,
             meta_graph_suffix: str = "meta", write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str | None:
        """Writes `save_path[-global_step]` (.index, .data-00000-of-00001, .meta) and updates the
        `checkpoint` file next to it; returns the checkpoint prefix."""
        raw = _raw_session(sess)
        saveables = self._built()
        if latest_filename is None:
            latest_filename = "checkpoint"
        if os.path.split(latest_filename)[0]:
            raise ValueError("'latest_filename' must not contain path components")
        save_path = os.fspath(save_path)
        if global_step is not None:
            step = global_step if isinstance(global_step, (int, np.integer)) else raw.run(global_step)
            step = int(step)
            checkpoint_file = f"{save_path}-{step:08d}" if self._pad_step_number else f"{save_path}-{step}"
        else:
            checkpoint_file = save_path
            if os.path.basename(save_path) == latest_filename and not self._sharded:
                raise ValueError(f"'latest_filename' collides with 'save_path': '{latest_filename}' and "
                                 f"'{save_path}'")
        save_dir = os.path.dirname(save_path)
        if save_dir and not os.path.isdir(save_dir):
            if os.path.exists(save_dir):
                raise ValueError(f"Parent directory of {save_path} doesn't exist, can't save.")
            os.makedirs(save_dir, exist_ok=True)  # TF's V2 save creates the checkpoint directory
        if self._is_empty:
            return None
        values = raw._read_variables([s.op_name for s in saveables])
        write_bundle(checkpoint_file, [(s.key, v) for s, v in zip(saveables, values)])
        if write_meta_graph:
            graph = getattr(raw, "graph", None) or self._graph
            self._write_meta_graph(f"{checkpoint_file}.{meta_graph_suffix}", graph)
        if write_state:
            with self._lock:  # saves from several threads must not interleave their bookkeeping
                self._record_last_checkpoint(checkpoint_file)
                ckpt.update_checkpoint_state(save_dir or ".", checkpoint_file, self.last_checkpoints or None,
                                             latest_filename, save_relative_paths=self._save_relative_paths)
                self._delete_old_checkpoints(meta_graph_suffix)
        return checkpoint_file

    def restore(self, sess: Any, save_path: str | None) -> None:
        """Loads every variable of this Saver from the checkpoint at `save_path` (also initializing it).

        ValueError if no checkpoint is there, NotFoundError for a missing key, InvalidArgumentError
        for a dtype or shape mismatch, DataLossError for damaged files; nothing is written on error.
        """
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        raw = _raw_session(sess)
        saveables = self._built()
        prefix = os.fspath(save_path)
        if not ckpt.checkpoint_exists(prefix):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {prefix}")
        if self._is_empty:
            return
        logger.info("Restoring parameters from %s", prefix)
        reader = BundleReader(prefix)
        for s in saveables:
            if s.key not in reader.entries:
                raise NotFoundError(None, None, _MISSING_KEY.format(key=s.key))
            self._check_entry(s, reader, prefix)
        values = reader.read_many(s.key for s in saveables)
        out: dict[str, np.ndarray] = {}
        for s in saveables:
            v = values[s.key]
            if self._reshape and s.shape.is_fully_defined() and tuple(s.shape.as_list()) != v.shape:
                v = v.reshape(tuple(s.shape.as_list()))
            out[s.op_name] = v
        raw._write_variables(out, owned=True)  # freshly read buffers: no second copy

    def _check_entry(self, s: _Saveable, reader: BundleReader, prefix: str) -> None:
        entry = reader.entries[s.key]
        stored = reader.dtype(s.key)
        if stored is not s.dtype:
            raise InvalidArgumentError(None, None, f"Restoring from checkpoint {prefix} failed: "
                                       f"tensor_name = {s.key}; expected dtype {s.dtype.name} does not "
                                       f"equal original dtype {stored.name} (variable {s.op_name})")
        if s.shape.ndims is None or s.shape.is_compatible_with(list(entry.shape)):
            return
        if self._reshape and s.shape.num_elements() == int(np.prod(entry.shape)):
            return
        raise InvalidArgumentError(None, None, _SHAPE_MISMATCH.format(
            prefix=prefix, var=s.op_name, key=s.key, lhs=shape_str(s.shape.as_tuple()),
            rhs=shape_str(entry.shape)))

    def _write_meta_graph(self, path: str, graph: Graph) -> None:
        """Exports the meta graph; an unchanged graph is hard-linked from the previous save's file
        (a complete, committed file) instead of being serialized again."""
        key = _graph_signature(graph, self.saver_def)
        last = self._last_meta
        if last is not None and last[0] == key and os.path.exists(last[1]):
            if last[1] == path:  # same prefix again: the file there is already this graph
                return
            tmp = atomic.temp_name(path)
            try:
                os.link(last[1], tmp)
                os.replace(tmp, path)
                self._last_meta = (key, path)
                return
            except OSError:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
        self.export_meta_graph(path, graph=graph)
        self._last_meta = (key, path)

    # -- meta graphs ------------------------------------------------------------------------------------
    def export_meta_graph(self, filename: str | None = None, collection_list: list[str] | None = None,
                          as_text: bool = False, export_scope: str | None = None, clear_devices: bool = False,
                          clear_extraneous_savers: bool = False, strip_default_attrs: bool = False,
                          save_debug_info: bool = False, graph: Graph | None = None) -> Any:
        """Writes the graph, its collections and this Saver to `filename`; returns the meta graph."""
        return meta_graph.export_meta_graph(filename=filename, graph=graph or self._graph,
                                            saver_def=self.saver_def, collection_list=collection_list,
                                            export_scope=export_scope, clear_devices=clear_devices)
