"""`tf.saved_model.loader.load`: a SavedModel's meta graph (by tags) into a session, variables restored."""
from __future__ import annotations

import os
from typing import Any

from jitflow.errors import DataLossError
from jitflow.framework.importer import parse_file
from jitflow.protos.meta_graph import MetaGraphDef
from jitflow.protos.saved_model import SavedModel
from jitflow.train import meta_graph

from . import constants as c


def maybe_saved_model_directory(export_dir: str) -> bool:
    """True when `export_dir` holds a saved_model.pb or .pbtxt."""
    return any(os.path.exists(os.path.join(export_dir, n))
               for n in (c.SAVED_MODEL_FILENAME_PB, c.SAVED_MODEL_FILENAME_PBTXT))


def read_saved_model(export_dir: str) -> SavedModel:
    """The SavedModel proto of `export_dir`; OSError if there is none, DataLossError if damaged."""
    for name in (c.SAVED_MODEL_FILENAME_PB, c.SAVED_MODEL_FILENAME_PBTXT):
        path = os.path.join(export_dir, name)
        if os.path.exists(path):
            return parse_file(path, SavedModel())
    raise OSError(f"SavedModel file does not exist at: {export_dir}/{{{c.SAVED_MODEL_FILENAME_PBTXT}|"
                  f"{c.SAVED_MODEL_FILENAME_PB}}}")


def _meta_graph_for(sm: SavedModel, tags: list[str], export_dir: str) -> MetaGraphDef:
    want = set(tags)
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == want:
            return mg
    available = [list(mg.meta_info_def.tags) for mg in sm.meta_graphs]
    raise RuntimeError(f"MetaGraphDef associated with tags {sorted(want)!r} could not be found in SavedModel at "
                       f"{export_dir}. Available tags: {available}")


def load(sess: Any, tags: list[str], export_dir: str, import_scope: str | None = None,
         **saver_kwargs: Any) -> MetaGraphDef:
    """Imports the meta graph tagged `tags` into `sess.graph`, restores its variables, runs its main op;
    returns the MetaGraphDef (signature defs and all)."""
    export_dir = os.fspath(export_dir)
    mg = _meta_graph_for(read_saved_model(export_dir), list(tags), export_dir)
    with sess.graph.as_default():
        saver = meta_graph.import_meta_graph(mg, import_scope=import_scope, **saver_kwargs)
        prefix = os.path.join(export_dir, c.VARIABLES_DIRECTORY, c.VARIABLES_FILENAME)
        if saver is not None and os.path.exists(prefix + ".index"):
            saver.restore(sess, prefix)
        elif saver is not None:
            raise DataLossError(None, None, f"SavedModel at {export_dir} has variables but no {prefix}.index")
        for key in (c.MAIN_OP_KEY, c.LEGACY_INIT_OP_KEY):
            ops = sess.graph.get_collection(key)
            if ops:
                sess.run(ops[0])
                break
    return mg
