"""Element structures of `tf.data`: nests of tuples, dicts and namedtuples with tensors at the leaves.

As in TF 1.x, a list is not a structure but a value (it becomes one tensor); tuples, namedtuples and
dicts (keys in sorted order) are structures.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_structure(x: Any) -> bool:
    """Whether `x` is a tuple/namedtuple/dict nest rather than a leaf."""
    return isinstance(x, (tuple, dict))


def flatten(x: Any) -> list[Any]:
    """The leaves of `x` in TF's order (dict keys sorted)."""
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    if isinstance(x, tuple):
        return [leaf for item in x for leaf in flatten(item)]
    return [x]


def pack_as(template: Any, flat: list[Any]) -> Any:
    """Rebuilds `template`'s structure with the leaves `flat` (in `flatten` order)."""
    it = iter(flat)
    res = _pack(template, it)
    return res


def _pack(template: Any, it: Any) -> Any:
    if isinstance(template, dict):
        packed = {k: _pack(template[k], it) for k in sorted(template)}
        return type(template)((k, packed[k]) for k in template) if type(template) is not dict else \
            {k: packed[k] for k in template}
    if isinstance(template, tuple):
        items = [_pack(t, it) for t in template]
        return type(template)(*items) if hasattr(template, "_fields") else tuple(items)
    return next(it)


def map_structure(fn: Callable[[Any], Any], x: Any) -> Any:
    """`x` with `fn` applied to every leaf."""
    return pack_as(x, [fn(leaf) for leaf in flatten(x)])


def same_structure(a: Any, b: Any) -> bool:
    """Whether `a` and `b` have the same nesting (leaves not compared)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and sorted(a) == sorted(b) and all(
            same_structure(a[k], b[k]) for k in a)
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(
            same_structure(x, y) for x, y in zip(a, b))
    return True


def describe(x: Any) -> str:
    """A short text of the structure of `x`, for error messages."""
    return str(map_structure(lambda _: ".", x)).replace("'.'", ".")
