"""`TensorShape` and `Dimension`: static, possibly partially known shapes."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class Dimension:
    """One dimension of a static shape; `value` is an int or None (unknown)."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, Dimension):
            value = value.value
        if value is not None:
            try:
                value = int(value.__index__())
            except (AttributeError, TypeError):
                raise TypeError(f"Dimension value must be integer or None, got {value!r}") from None
            if value < 0:
                raise ValueError(f"Dimension {value} must be >= 0")
        self._value = value

    @property
    def value(self) -> int | None:
        return self._value

    def __int__(self) -> int:
        if self._value is None:
            raise TypeError("Cannot convert an unknown Dimension to an int")
        return self._value

    __index__ = __int__

    def __eq__(self, other: object) -> Any:
        o = other.value if isinstance(other, Dimension) else other
        if self._value is None or o is None:
            return None
        return self._value == o

    def __ne__(self, other: object) -> Any:
        eq = self.__eq__(other)
        return None if eq is None else not eq

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Dimension({self._value})"

    def __str__(self) -> str:
        return "?" if self._value is None else str(self._value)

    def _op(self, other: Any, fn: Any) -> Dimension:
        o = other.value if isinstance(other, Dimension) else other
        if self._value is None or o is None:
            return Dimension(None)
        return Dimension(fn(self._value, int(o)))

    def __add__(self, o: Any) -> Dimension:
        return self._op(o, lambda a, b: a + b)

    __radd__ = __add__

    def __sub__(self, o: Any) -> Dimension:
        return self._op(o, lambda a, b: a - b)

    def __mul__(self, o: Any) -> Dimension:
        return self._op(o, lambda a, b: a * b)

    __rmul__ = __mul__

    def __floordiv__(self, o: Any) -> Dimension:
        return self._op(o, lambda a, b: a // b)

    def __lt__(self, o: Any) -> Any:
        o = o.value if isinstance(o, Dimension) else o
        return None if self._value is None or o is None else self._value < o

    def __gt__(self, o: Any) -> Any:
        o = o.value if isinstance(o, Dimension) else o
        return None if self._value is None or o is None else self._value > o

    def is_compatible_with(self, other: Any) -> bool:
        o = Dimension(other).value
        return self._value is None or o is None or self._value == o

    def merge_with(self, other: Any) -> Dimension:
        o = Dimension(other)
        if not self.is_compatible_with(o):
            raise ValueError(f"Dimensions {self} and {o} are not compatible")
        return self if self._value is not None else o


def dimension_value(d: Any) -> int | None:
    """The int value of a Dimension, int or None."""
    return d.value if isinstance(d, Dimension) else d


class TensorShape:
    """A static shape: unknown rank (`dims is None`) or a list of dimensions, each int or None."""

    __slots__ = ("_dims",)

    def __init__(self, dims: Any) -> None:
        if isinstance(dims, TensorShape):
            self._dims: tuple[int | None, ...] | None = dims._dims
        elif dims is None:
            self._dims = None
        elif isinstance(dims, (int, Dimension)) and not isinstance(dims, bool):
            self._dims = (Dimension(dims).value,)
        else:
            try:
                it = list(dims)
            except TypeError:
                raise TypeError(f"A shape must be a list of ints or None, got {dims!r}") from None
            self._dims = tuple(Dimension(d).value for d in it)

    @property
    def dims(self) -> list[Dimension] | None:
        return None if self._dims is None else [Dimension(d) for d in self._dims]

    @property
    def ndims(self) -> int | None:
        return None if self._dims is None else len(self._dims)

    rank = ndims

    def as_list(self) -> list[int | None]:
        if self._dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self._dims)

    def as_tuple(self) -> tuple[int | None, ...] | None:
        """The dims as a tuple of ints/None, or None for unknown rank (jitflow extension)."""
        return self._dims

    def is_fully_defined(self) -> bool:
        return self._dims is not None and all(d is not None for d in self._dims)

    def num_elements(self) -> int | None:
        if not self.is_fully_defined():
            return None
        n = 1
        for d in self._dims or ():
            n *= d  # type: ignore[operator]
        return n

    def is_compatible_with(self, other: Any) -> bool:
        o = as_shape(other)
        if self._dims is None or o._dims is None:
            return True
        if len(self._dims) != len(o._dims):
            return False
        return all(a is None or b is None or a == b for a, b in zip(self._dims, o._dims))

    def merge_with(self, other: Any) -> TensorShape:
        o = as_shape(other)
        if self._dims is None:
            return o
        if o._dims is None:
            return self
        if not self.is_compatible_with(o):
            raise ValueError(f"Shapes {self} and {o} are not compatible")
        return TensorShape([a if a is not None else b for a, b in zip(self._dims, o._dims)])

    def assert_is_compatible_with(self, other: Any) -> None:
        if not self.is_compatible_with(other):
            raise ValueError(f"Shapes {self} and {as_shape(other)} are incompatible")

    def assert_has_rank(self, rank: int) -> None:
        if self._dims is not None and len(self._dims) != rank:
            raise ValueError(f"Shape {self} must have rank {rank}")

    def with_rank(self, rank: int) -> TensorShape:
        if self._dims is None:
            return unknown_shape(rank)
        self.assert_has_rank(rank)
        return self

    def with_rank_at_least(self, rank: int) -> TensorShape:
        if self._dims is not None and len(self._dims) < rank:
            raise ValueError(f"Shape {self} must have rank at least {rank}")
        return self

    def concatenate(self, other: Any) -> TensorShape:
        o = as_shape(other)
        if self._dims is None or o._dims is None:
            return TensorShape(None)
        return TensorShape(self._dims + o._dims)

    def __len__(self) -> int:
        if self._dims is None:
            raise ValueError("Cannot take the length of shape with unknown rank.")
        return len(self._dims)

    def __bool__(self) -> bool:
        return self._dims is not None

    def __iter__(self) -> Iterator[Dimension]:
        if self._dims is None:
            raise ValueError("Cannot iterate over a shape with unknown rank.")
        return iter(Dimension(d) for d in self._dims)

    def __getitem__(self, key: Any) -> Any:
        if self._dims is None:
            if isinstance(key, slice):
                return TensorShape(None)
            return Dimension(None)
        if isinstance(key, slice):
            return TensorShape(self._dims[key])
        return Dimension(self._dims[key])

    def __eq__(self, other: object) -> bool:
        try:
            o = as_shape(other)
        except (TypeError, ValueError):
            return NotImplemented
        return self._dims == o._dims

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._dims)

    def __repr__(self) -> str:
        return f"TensorShape({None if self._dims is None else list(self._dims)})"

    def __str__(self) -> str:
        if self._dims is None:
            return "<unknown>"
        inner = ", ".join("?" if d is None else str(d) for d in self._dims)
        return f"({inner},)" if len(self._dims) == 1 else f"({inner})"

    def __reduce__(self) -> Any:
        return (TensorShape, (None if self._dims is None else list(self._dims),))


def known_dims(dims: Iterable[int | None]) -> list[int]:
    """`dims` as ints; ValueError if any is unknown (for callers that checked, and for the type checker)."""
    out = list(dims)
    if any(d is None for d in out):
        raise ValueError(f"Shape {shape_str(out)} must be fully defined here")
    return [int(d) for d in out if d is not None]


def as_shape(shape: Any) -> TensorShape:
    """Converts a list/tuple/TensorShape/None into a `TensorShape`."""
    return shape if isinstance(shape, TensorShape) else TensorShape(shape)


def unknown_shape(rank: int | None = None) -> TensorShape:
    """A shape of unknown rank, or of known rank with unknown dims."""
    return TensorShape(None if rank is None else [None] * rank)


def scalar() -> TensorShape:
    return TensorShape([])


def shape_str(dims: Iterable[int | None] | None) -> str:
    """TF's '[?,3]' rendering used in error messages."""
    if dims is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
