"""`tf.saved_model.builder.SavedModelBuilder` and `tf.saved_model.simple_save`: TensorFlow's SavedModel
directory (saved_model.pb + variables/ + assets/), which TensorFlow's loader reads."""
from __future__ import annotations

import os
from typing import Any

from google.protobuf import text_format

from jitflow.framework.graph import GraphKeys
from jitflow.protos.saved_model import SavedModel
from jitflow.train import meta_graph

from . import constants as c
from .signature_def_utils import predict_signature_def


class SavedModelBuilder:
    """Builds a SavedModel in `export_dir` (which must not exist yet): meta graphs by tags, the
    variables of the first one."""

    def __init__(self, export_dir: str) -> None:
        self._export_dir = os.fspath(export_dir)
        if os.path.exists(self._export_dir):
            if os.listdir(self._export_dir):
                raise AssertionError(f"Export directory already exists, and isn't empty. Please choose a "
                                     f"different export directory, or delete all the contents of the specified "
                                     f"directory: {self._export_dir}")
        else:
            os.makedirs(self._export_dir)
        self._saved_model = SavedModel(saved_model_schema_version=c.SAVED_MODEL_SCHEMA_VERSION)
        self._has_saved_variables = False
        self._saver_def: dict[str, Any] | None = None

    def _add(self, graph: Any, tags: list[str], signature_def_map: dict[str, Any] | None, main_op: Any,
             clear_devices: bool) -> None:
        if main_op is not None:
            graph.add_to_collection(c.MAIN_OP_KEY, main_op)
        try:
            meta = meta_graph.export_meta_graph(graph=graph, saver_def=self._saver_def, clear_devices=clear_devices)
        finally:
            if main_op is not None:
                graph.get_collection_ref(c.MAIN_OP_KEY).remove(main_op)
        meta.meta_info_def.tags.extend(tags)
        for key, sig in (signature_def_map or {}).items():
            meta.signature_def[key].CopyFrom(sig)
        self._saved_model.meta_graphs.add().CopyFrom(meta)

    def add_meta_graph_and_variables(self, sess: Any, tags: list[str], signature_def_map: dict[str, Any] | None = None,
                                     assets_collection: Any = None, legacy_init_op: Any = None,
                                     clear_devices: bool = False, main_op: Any = None,
                                     strip_default_attrs: bool = False, saver: Any = None) -> None:
        """Saves the session's variables under variables/ and adds the graph under `tags`."""
        from jitflow.train.saver import Saver

        if self._has_saved_variables:
            raise AssertionError("Graph state including variables and assets has already been saved. Please "
                                 "invoke `add_meta_graph()` instead.")
        graph = sess.graph
        with graph.as_default():
            saver = saver or Saver(allow_empty=True, write_version=2)
        var_dir = os.path.join(self._export_dir, c.VARIABLES_DIRECTORY)
        os.makedirs(var_dir, exist_ok=True)
        saver.save(sess, os.path.join(var_dir, c.VARIABLES_FILENAME), write_meta_graph=False, write_state=False)
        self._saver_def = saver.saver_def
        self._add(graph, list(tags), signature_def_map, main_op or legacy_init_op, clear_devices)
        self._has_saved_variables = True

    def add_meta_graph(self, tags: list[str], signature_def_map: dict[str, Any] | None = None,
                       assets_collection: Any = None, legacy_init_op: Any = None, clear_devices: bool = False,
                       main_op: Any = None, strip_default_attrs: bool = False, saver: Any = None) -> None:
        """Adds the default graph under `tags` (after `add_meta_graph_and_variables`)."""
        from jitflow.framework.graph import get_default_graph

        if not self._has_saved_variables:
            raise AssertionError("Graph state including variables and assets has not been saved yet. Please "
                                 "invoke `add_meta_graph_and_variables()` first.")
        self._add(get_default_graph(), list(tags), signature_def_map, main_op or legacy_init_op, clear_devices)

    def save(self, as_text: bool = False) -> str:
        """Writes saved_model.pb (or .pbtxt); returns its path."""
        name = c.SAVED_MODEL_FILENAME_PBTXT if as_text else c.SAVED_MODEL_FILENAME_PB
        path = os.path.join(self._export_dir, name)
        data = text_format.MessageToString(self._saved_model).encode() if as_text else \
            self._saved_model.SerializeToString()
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        return path


def simple_save(session: Any, export_dir: str, inputs: dict[str, Any], outputs: dict[str, Any],
                legacy_init_op: Any = None) -> None:
    """A serving SavedModel: tag "serve", the default predict signature of `inputs` -> `outputs`."""
    sigs = {c.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: predict_signature_def(inputs, outputs)}
    b = SavedModelBuilder(export_dir)
    b.add_meta_graph_and_variables(session, tags=[c.tag_constants.SERVING], signature_def_map=sigs,
                                   assets_collection=session.graph.get_collection(GraphKeys.ASSET_FILEPATHS),
                                   main_op=legacy_init_op, clear_devices=True)
    b.save()
