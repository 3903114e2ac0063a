"""The graph files TensorFlow's CheckpointSaverHook writes next to checkpoints: graph.pbtxt and the
graph event of the checkpoint directory's event file (TensorBoard's Graphs tab)."""
from __future__ import annotations

import logging

from jitflow.errors import OpError
from jitflow.framework.graph import get_default_graph
from jitflow.framework.importer import write_graph

logger = logging.getLogger("jitflow.train")


def write_graph_files(checkpoint_dir: str) -> None:
    """Writes graph.pbtxt and the graph event for the default graph; a graph holding an op that has
    no GraphDef form is logged and skipped, never a training failure."""
    from jitflow.summary import FileWriterCache

    graph = get_default_graph()
    try:
        graph_def = graph.as_graph_def(add_shapes=True)
    except (OpError, ValueError) as e:
        logger.warning("Graph not written to %s: %s", checkpoint_dir, e)
        return
    write_graph(graph_def, checkpoint_dir, "graph.pbtxt")
    FileWriterCache.get(checkpoint_dir).add_graph(None, graph_def=graph_def)
