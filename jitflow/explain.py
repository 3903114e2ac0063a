"""`jitflow.explain`: what the compiler made of a plan: clusters, fallbacks and why, compile times.

`explain(fetches, feed_dict=None, graph=None)` builds (without running) the plan that
`Session.run(fetches, feed_dict)` would build, kernels included, and returns an `ExplainReport`.
`collect_reports()` gives the reports of every plan built while JITFLOW_EXPLAIN_RECORD=1 (the CLI's
`jitflow explain SCRIPT.py`). In recorded plans a cluster whose kernel was never needed (it only ran
on one-element or tiny inputs, which take the NumPy path) shows ``"source": "deferred"`` and an
empty key; `explain()` compiles the predicted kernel of every cluster, so its sources are always
``"compiled"``, ``"memory"`` or ``"disk"``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jitflow.compiler.plan import Plan

_CLUSTER_KEYS = ("ops", "backend", "key", "compile_seconds", "source")


class ExplainReport:
    """The clusters and fallbacks of one plan; `str()` is a readable summary, `to_dict()` plain data."""

    def __init__(self, report: dict[str, Any], n_ops: int = 0, edges: list[tuple[str, str]] | None = None,
                 jit: bool = True) -> None:
        self._report = report
        self.n_ops = n_ops
        self.edges = edges or []
        self.jit = jit

    @property
    def clusters(self) -> list[dict[str, Any]]:
        return [{k: c.get(k) for k in _CLUSTER_KEYS} for c in self._report.get("clusters", [])]

    @property
    def fallbacks(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self._report.get("fallbacks", [])]

    @property
    def loops(self) -> list[dict[str, Any]]:
        """The sub-plans of each loop op: [{op, kind: cond|body|grad, report: ExplainReport}]."""
        return list(self._report.get("loops", []))

    def to_dict(self) -> dict[str, Any]:
        """{"clusters": [{ops, backend, key, compile_seconds, source}], "fallbacks": [{op, type, reason}]}."""
        d: dict[str, Any] = {"clusters": self.clusters, "fallbacks": self.fallbacks}
        if self._report.get("loop_state"):
            d["loop_state"] = list(self._report["loop_state"])
        if self._report.get("hoisted"):
            d["hoisted"] = [dict(h) for h in self._report["hoisted"]]
        if self._report.get("deduplicated"):
            d["deduplicated"] = [{"op": a, "same_as": b} for a, b in self._report["deduplicated"]]
        if self._report.get("inter_op"):
            d["inter_op"] = self._report["inter_op"]
        if self._report.get("in_place"):
            d["in_place"] = list(self._report["in_place"])
        if self._report.get("native"):
            d["native"] = dict(self._report["native"])
        if self.loops:
            d["loops"] = [{"op": x["op"], "kind": x["kind"], "mode": x.get("mode"), "plan": x["report"].to_dict()}
                          for x in self.loops]
        return d

    def __str__(self) -> str:
        lines = [f"plan: {self.n_ops} ops, {len(self.clusters)} clusters, {len(self.fallbacks)} fallbacks"
                 + ("" if self.jit else " (JIT off: everything interpreted)")]
        for i, c in enumerate(self.clusters):
            key = (c["key"] or "-")[:12]
            lines.append(f"  cluster {i} [{c['backend']}] key {key} {c['source']}, "
                         f"{c['compile_seconds']:.3f} s: {', '.join(c['ops'])}")
        for f in self.fallbacks:
            lines.append(f"  fallback {f['op']} ({f['type']}): {f['reason']}")
        if self._report.get("loop_state"):  # a GPU loop body's values handed to the next iteration on the device
            lines.append(f"  loop state on the device: {', '.join(self._report['loop_state'])}")
        dups = self._report.get("deduplicated", [])
        if dups:  # common subexpressions (compiler/cse.py): computed once, read by both
            shown = ", ".join(f"{a} = {b}" for a, b in dups[:3]) + (", ..." if len(dups) > 3 else "")
            lines.append(f"  deduplicated {len(dups)} ops: {shown}")
        if self._report.get("inter_op"):  # independent steps at once (compiler/inter_op.py)
            lines.append(f"  {self._report['inter_op']}")
        if self._report.get("in_place"):  # compiler/in_place.py
            lines.append(f"  updated in place while nothing else holds them: {', '.join(self._report['in_place'])}")
        native = self._report.get("native")
        if native and "steps" in native:  # compiler/native_plan.py: after enough runs with the same feed shapes
            lines.append(f"  runs as one compiled call ({native['steps']} steps, made in {native['compile_seconds']}s)")
        elif native:
            lines.append(f"  runs step by step, not as one compiled call: {native['why_not']}")
        for h in self._report.get("hoisted", []):  # a backward loop's capture gradients summed after it
            lines.append(f"  hoisted {h['op']} ({h['type']}): the gradient of {h['capture']}, {h['as']}")
        for x in self.loops:  # a loop's sub-plans: one compiled loop, or replayed once per iteration
            sub = str(x["report"]).rstrip("\n").replace("\n", "\n    ")
            lines.append(f"  loop {x['op']} {x['kind']} ({x.get('mode', 'replayed per iteration')}) {sub}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"ExplainReport({self.to_dict()!r})"


def report_of(plan: Plan) -> ExplainReport:
    """The report of an already built plan."""
    names = {op.name for op in plan.ops}
    edges = [(t.op.name, op.name) for op in plan.ops for t in op.inputs if t.op.name in names]
    from jitflow.compiler import inter_op

    report = dict(plan.report)
    line = inter_op.describe(plan)
    if line:
        report["inter_op"] = line
    return ExplainReport(report, len(plan.ops), edges, jit=_lowered(plan))


def _lowered(plan: Plan) -> bool:
    return bool(plan.report.get("clusters") or plan.report.get("fallbacks")) or not plan.ops


def _add_loop_reports(plan: Plan, sess: Any, depth: int = 0) -> None:
    """Plans the cond/body (and gradient) sub-graphs of the plan's loops and adds their reports."""
    loops = []
    for op in plan.ops:
        if op.type not in ("While", "WhileGrad") or depth > 8:
            continue
        from jitflow.ops.while_loop import body_of
        from jitflow.ops.while_native import describe

        body = body_of(op)
        for kind in (("grad",) if op.type == "WhileGrad" else ("cond", "body")):
            sub = body.plan(sess, kind)
            _add_loop_reports(sub, sess, depth + 1)
            loops.append({"op": op.name, "kind": kind, "report": report_of(sub), "mode": describe(body, sess, kind)})
    if loops:
        plan.report["loops"] = loops


def explain(fetches: Any, feed_dict: Any = None, graph: Any = None) -> ExplainReport:
    """The report of the plan `Session.run(fetches, feed_dict)` would build (kernels are compiled)."""
    from jitflow.compiler.plan import build_plan
    from jitflow.framework.graph import get_default_graph
    from jitflow.session import Session, _flatten_fetches

    g = graph if graph is not None else get_default_graph()
    sess = Session(graph=g)
    try:
        flat: list[Any] = []
        _flatten_fetches(g, fetches, flat)
        feed_tensors, feed_values = sess._convert_feeds(feed_dict)
        del feed_values  # kernels are picked from static shapes when the plan is built
        plan = build_plan(flat, feed_tensors, sess._lowering())
        from jitflow.compiler.steps import compile_lazy

        for step in plan.steps:  # tiny clusters compile lazily in real runs; explain shows their kernels
            compile_lazy(step)
        _add_loop_reports(plan, sess)
        return report_of(plan)
    finally:
        sess.close()


def collect_reports() -> Iterator[ExplainReport]:
    """Reports of the plans recorded in this process (JITFLOW_EXPLAIN_RECORD=1)."""
    from jitflow.session import recorded_plans

    for plan in recorded_plans():
        yield report_of(plan)
