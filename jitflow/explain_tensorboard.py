"""Compiled plans as a TensorBoard graph (`jitflow explain --tensorboard LOGDIR SCRIPT.py`).

Each plan is a name scope `plan_N`; inside it every fused cluster is a scope `cluster_M` holding its
ops, ops the JIT left to the interpreter sit in `interpreted/` with the reason as their
`_jitflow_fallback` attr, and the rest (feeds, variables, ...) keep their own names. Edges are the
data inputs within the plan, so TensorBoard's Graphs tab shows what was fused and where it was not.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jitflow.protos.graph import GraphDef


def _scopes(plan: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(op name -> scope inside its plan, op name -> fallback reason) from a plan's report."""
    scope: dict[str, str] = {}
    for i, cluster in enumerate(plan.report.get("clusters", [])):
        for name in cluster.get("ops", []):
            scope.setdefault(str(name), f"cluster_{i}")
    reasons = {str(f.get("op")): str(f.get("reason", "")) for f in plan.report.get("fallbacks", [])}
    for name in reasons:
        scope.setdefault(name, "interpreted")
    return scope, reasons


def plans_graph_def(plans: Sequence[Any]) -> GraphDef:
    """One GraphDef holding every plan (see the module docstring)."""
    gd = GraphDef()
    for p, plan in enumerate(plans):
        scope, reasons = _scopes(plan)
        names = {op.name: f"plan_{p}/" + (f"{scope[op.name]}/" if op.name in scope else "") + op.name
                 for op in plan.ops}
        for op in plan.ops:
            node = gd.node.add(name=names[op.name], op=op.type, device=op.device)
            node.input.extend(names[t.op.name] + (f":{t.value_index}" if t.value_index else "")
                              for t in op.inputs if t.op.name in names)
            if op.name in reasons:
                node.attr["_jitflow_fallback"].s = reasons[op.name].encode()
    return gd


def write_plans(logdir: str, plans: Sequence[Any]) -> str:
    """Writes the plans' graph event to an event file in `logdir`; returns the file's path."""
    from jitflow.summary import FileWriter

    writer = FileWriter(logdir)
    try:
        writer.add_graph(None, graph_def=plans_graph_def(plans))
    finally:
        writer.close()
    return writer._path
