"""Serving a TensorFlow-written model: a frozen GraphDef (.pb / .pbtxt) or a SavedModel directory,
loaded and run compiled (`jitflow.run_graph(...)`, and the `jitflow run-graph` command)."""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jitflow.framework.graph import Graph


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def load_model(path: str, tags: Sequence[str] = ("serve",)) -> tuple[Graph, Any, dict[str, str]]:
    """(graph, session, aliases) of a frozen GraphDef file or a SavedModel directory (variables
    restored); aliases map the keys of a SavedModel's default serving signature to tensor names."""
    from jitflow.framework.importer import import_graph_def, parse_file
    from jitflow.protos.graph import GraphDef
    from jitflow.saved_model import loader
    from jitflow.session import Session

    graph = Graph()
    if os.path.isdir(path):
        sess = Session(graph=graph)
        mg = loader.load(sess, list(tags), path)
        sig = mg.signature_def.get("serving_default")
        aliases = {} if sig is None else {k: i.name for m in (sig.inputs, sig.outputs) for k, i in m.items()}
        return graph, sess, aliases
    gd = parse_file(path, GraphDef())
    with graph.as_default():
        import_graph_def(gd, name="")
    return graph, Session(graph=graph), {}


def run_graph(path: str, inputs: dict[str, Any], outputs: Sequence[str],
              tags: Sequence[str] = ("serve",)) -> dict[str, np.ndarray]:
    """Loads the model at `path`, feeds `inputs` (tensor or op names -> arrays) and returns `outputs`.
    With a SavedModel, names may also be keys of its default serving signature."""
    graph, sess, aliases = load_model(path, tags)
    with sess:
        fetches = [graph.get_tensor_by_name(_tensor_name(aliases.get(n, n))) for n in outputs]
        feed = {graph.get_tensor_by_name(_tensor_name(aliases.get(k, k))): np.asarray(v) for k, v in inputs.items()}
        values = sess.run(fetches, feed)
    return dict(zip(outputs, values))


def _parse_input(spec: str) -> tuple[str, np.ndarray]:
    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise argparse.ArgumentTypeError(f"--input takes NAME=FILE.npy, got {spec!r}")
    return name, np.load(file, allow_pickle=False)


def add_parser(top: Any) -> None:
    """Adds `run-graph` to the `jitflow` command line."""
    p = top.add_parser("run-graph", help="load a frozen graph or SavedModel written by TensorFlow and run it",
                       description="Load a frozen GraphDef (.pb, .pbtxt) or a SavedModel directory and "
                       "run it compiled: feed each --input NAME=FILE.npy, print (or --save) each --output.")
    p.add_argument("model", metavar="MODEL", help="frozen graph file or SavedModel directory")
    p.add_argument("--input", action="append", default=[], type=_parse_input, metavar="NAME=FILE.npy")
    p.add_argument("--output", action="append", default=[], required=True, metavar="NAME")
    p.add_argument("--tag", action="append", default=None, help="SavedModel tags (default: serve)")
    p.add_argument("--save", metavar="DIR", help="write each output to DIR/NAME.npy instead of printing it")
    p.set_defaults(func=_cmd_run_graph)


def _cmd_run_graph(args: argparse.Namespace) -> int:
    from jitflow.cli import CliError
    from jitflow.errors import OpError

    try:
        results = run_graph(args.model, dict(args.input), args.output, tuple(args.tag or ("serve",)))
    except (OpError, ValueError, KeyError, RuntimeError) as e:  # one line, as the other commands report
        raise CliError(str(e).splitlines()[0]) from None
    for name, value in results.items():
        value = np.asarray(value)
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            np.save(os.path.join(args.save, name.replace("/", "_").replace(":", "_") + ".npy"), value)
        else:
            print(f"{name}: shape={list(value.shape)} dtype={value.dtype}")
            print(np.array2string(value, threshold=50))
    return 0
