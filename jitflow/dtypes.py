"""`DType` objects: TensorFlow's data types and their NumPy equivalents."""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np


class DType:
    """A tensor element type (`tf.float32`, ...), with TF's enum value and NumPy dtype."""

    __slots__ = ("name", "_enum", "_np", "_base")

    def __init__(self, name: str, enum: int, np_dtype: Any, base: DType | None = None) -> None:
        self.name = name
        self._enum = enum
        self._np = np.dtype(np_dtype)
        self._base = base  # for a reference type (`float32_ref`, a ref variable's dtype): its value type

    @property
    def as_numpy_dtype(self) -> type:
        return self._np.type

    @property
    def np(self) -> np.dtype:
        """The NumPy dtype object (jitflow extension)."""
        return self._np

    @property
    def as_datatype_enum(self) -> int:
        return self._enum

    @property
    def base_dtype(self) -> DType:
        return self._base if self._base is not None else self

    @property
    def real_dtype(self) -> DType:
        return self.base_dtype

    @property
    def _is_ref_dtype(self) -> builtins.bool:
        return self._base is not None

    @property
    def _as_ref(self) -> DType:
        return self if self._base is not None else _REF[self]

    @property
    def is_floating(self) -> builtins.bool:
        return self._np.kind == "f"

    @property
    def is_integer(self) -> builtins.bool:
        return self._np.kind in "iu"

    @property
    def is_unsigned(self) -> builtins.bool:
        return self._np.kind == "u"

    @property
    def is_bool(self) -> builtins.bool:
        return self._np.kind == "b"

    @property
    def is_complex(self) -> builtins.bool:
        return self._np.kind == "c"

    @property
    def is_numeric(self) -> builtins.bool:
        return self._np.kind in "iufc"

    @property
    def size(self) -> int:
        return self._np.itemsize if self.name != "string" else 1

    @property
    def min(self) -> Any:
        if self.is_floating:
            return float(np.finfo(self._np).min)
        if self.is_integer:
            return int(np.iinfo(self._np).min)
        raise TypeError(f"Cannot find minimum value of {self.name}.")

    @property
    def max(self) -> Any:
        if self.is_floating:
            return float(np.finfo(self._np).max)
        if self.is_integer:
            return int(np.iinfo(self._np).max)
        raise TypeError(f"Cannot find maximum value of {self.name}.")

    def is_compatible_with(self, other: Any) -> builtins.bool:
        return as_dtype(other) is self

    def __eq__(self, other: object) -> builtins.bool:
        if isinstance(other, DType):
            return other is self
        try:
            return as_dtype(other) is self  # type: ignore[arg-type]
        except TypeError:
            return False

    def __ne__(self, other: object) -> builtins.bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._enum

    def __repr__(self) -> str:
        return f"tf.{self.name}"

    def __str__(self) -> str:
        return f"<dtype: {self.name!r}>"

    def __reduce__(self) -> Any:
        return (as_dtype, (self.name,))


float16 = DType("float16", 19, np.float16)
half = float16
float32 = DType("float32", 1, np.float32)
float64 = DType("float64", 2, np.float64)
double = float64
int8 = DType("int8", 6, np.int8)
int16 = DType("int16", 5, np.int16)
int32 = DType("int32", 3, np.int32)
int64 = DType("int64", 9, np.int64)
uint8 = DType("uint8", 4, np.uint8)
uint16 = DType("uint16", 17, np.uint16)
uint32 = DType("uint32", 22, np.uint32)
uint64 = DType("uint64", 23, np.uint64)
bool = DType("bool", 10, np.bool_)  # noqa: A001 - TF's name
string = DType("string", 7, np.object_)
complex64 = DType("complex64", 8, np.complex64)
complex128 = DType("complex128", 18, np.complex128)
# Opaque run-time objects (TensorArrays, loop histories): never fed, fetched or compiled.
variant = DType("variant", 21, np.object_)

ALL: tuple[DType, ...] = (float16, float32, float64, int8, int16, int32, int64, uint8, uint16, uint32,
                          uint64, bool, string, complex64, complex128)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "int": int32, "long": int64,
                 "bool_": bool, "str": string, "bytes": string})
_BY_ENUM = {d.as_datatype_enum: d for d in ALL}
_BY_NP = {d.np: d for d in ALL if d is not string}
# TF's reference types: the dtype of a ref variable (`Variable.dtype`); enum = value type's + 100
_REF = {d: DType(d.name + "_ref", d.as_datatype_enum + 100, d.np, base=d) for d in ALL}
float16_ref, float32_ref, float64_ref = _REF[float16], _REF[float32], _REF[float64]
int32_ref, int64_ref, bool_ref, string_ref = _REF[int32], _REF[int64], _REF[bool], _REF[string]


def as_dtype(value: Any) -> DType:
    """Converts a DType, name, TF enum, NumPy dtype or Python type into a `DType`.

    A reference type (`float32_ref`) converts to its value type: every op takes values, not refs.
    """
    if isinstance(value, DType):
        return value.base_dtype
    if isinstance(value, str):
        if value.endswith("_ref"):
            value = value[:-4]
        if value in _BY_NAME:
            return _BY_NAME[value]
        try:
            return _from_numpy(np.dtype(value))
        except TypeError:
            raise TypeError(f"Cannot convert value {value!r} to a TensorFlow DType.") from None
    if isinstance(value, int) and not isinstance(value, builtins.bool) and value in _BY_ENUM:
        return _BY_ENUM[value]
    if value is float:
        return float32
    if value is int:
        return int32
    if value is builtins.bool:
        return bool
    if value in (str, builtins.bytes):
        return string
    try:
        return _from_numpy(np.dtype(value))
    except TypeError:
        raise TypeError(f"Cannot convert value {value!r} to a TensorFlow DType.") from None



def _from_numpy(d: np.dtype) -> DType:
    if d.kind in "OSU":
        return string
    if d in _BY_NP:
        return _BY_NP[d]
    raise TypeError(f"Cannot convert value {d!r} to a TensorFlow DType.")
