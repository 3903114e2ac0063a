"""Stage 1 of a run: the ops that the fetches need, in an order that respects every dependency."""
from __future__ import annotations

from collections.abc import Iterable

from jitflow.framework.graph import Operation, Tensor


def prune(fetch_tensors: Iterable[Tensor], target_ops: Iterable[Operation],
          fed: set[Tensor]) -> list[Operation]:
    """Ops needed to compute `fetch_tensors` and run `target_ops`, topologically sorted.

    Fed tensors cut the graph: their producers run only if something else needs them. Reference
    inputs (the variable of an Assign) are not evaluated, so they add no dependency.
    """
    roots: list[Operation] = [t.op for t in fetch_tensors if t not in fed]
    roots.extend(target_ops)
    order: list[Operation] = []
    state: dict[Operation, int] = {}  # 1 = on the stack, 2 = done
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[Operation, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            op, i = stack[-1]
            deps = _deps(op, fed)
            if i < len(deps):
                stack[-1] = (op, i + 1)
                d = deps[i]
                s = state.get(d)
                if s is None:
                    state[d] = 1
                    stack.append((d, 0))
                elif s == 1:
                    raise ValueError(f"Graph has a cycle through op '{d.name}'")
            else:
                stack.pop()
                state[op] = 2
                order.append(op)
    return order


def _deps(op: Operation, fed: set[Tensor]) -> list[Operation]:
    refs = op.opdef.ref_inputs
    deps = [t.op for i, t in enumerate(op.inputs) if t not in fed and i not in refs]
    # a control dependency on an op whose outputs are all fed is met by the feed (as in TF: tf.metrics.mean
    # of a placeholder depends on its value)
    deps.extend(c for c in op.control_inputs if not (c.outputs and all(t in fed for t in c.outputs)))
    return deps
