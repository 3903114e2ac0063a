"""Builds protocol-buffer message classes from schemas written in code (no protoc, no generated files).

Each module of `jitflow.protos` describes one of TensorFlow's .proto files with `Message` / `Enum`
specs whose fields are written as one-line declarations in .proto syntax:

    "repeated .tensorflow.TensorShapeProto.Dim dim = 2"
    "map<string, .tensorflow.AttrValue> attr = 5"
    "float f = 4 [oneof value]"

Names, packages and field numbers are TensorFlow's, so the messages read and write TensorFlow's bytes.
All files live in one private descriptor pool, so they never clash with TensorFlow's own generated
classes when both are imported in one process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

POOL = descriptor_pool.DescriptorPool()
_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _FDP.TYPE_DOUBLE, "float": _FDP.TYPE_FLOAT, "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64, "int32": _FDP.TYPE_INT32, "fixed64": _FDP.TYPE_FIXED64,
    "fixed32": _FDP.TYPE_FIXED32, "bool": _FDP.TYPE_BOOL, "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES, "uint32": _FDP.TYPE_UINT32, "sfixed32": _FDP.TYPE_SFIXED32,
    "sfixed64": _FDP.TYPE_SFIXED64, "sint32": _FDP.TYPE_SINT32, "sint64": _FDP.TYPE_SINT64,
}
_FIELD = re.compile(r"^(repeated\s+)?(map<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)"
                    r"(?:\s*\[([^\]]*)\])?$")
_enum_names: set[str] = set()


@dataclass
class Enum:
    """An enum: name and (value name, number) pairs."""

    name: str
    values: list[tuple[str, int]]


@dataclass
class Message:
    """A message: field declarations, nested messages and nested enums."""

    name: str
    fields: list[str]
    nested: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)


def _add_any() -> None:
    """google/protobuf/any.proto, which MetaGraphDef and CollectionDef use."""
    fdp = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(fdp)
    POOL.Add(fdp)


_add_any()


def _enum_proto(spec: Enum, out: Any) -> None:
    out.name = spec.name
    for name, number in spec.values:
        out.value.add(name=name, number=number)


def _declare_enums(prefix: str, spec: Message) -> None:
    """Records the full names of the enums nested in `spec` (so fields can tell enums from messages)."""
    full = f"{prefix}.{spec.name}"
    _enum_names.update(f"{full}.{e.name}" for e in spec.enums)
    for sub in spec.nested:
        _declare_enums(full, sub)


def _set_type(fp: Any, type_name: str) -> None:
    if type_name in _SCALARS:
        fp.type = _SCALARS[type_name]
    else:
        fp.type_name = type_name
        fp.type = _FDP.TYPE_ENUM if type_name in _enum_names else _FDP.TYPE_MESSAGE


def _map_entry(out: Any, name: str, key: str, value: str) -> str:
    """Adds the nested `<Name>Entry` message a map field uses; returns its simple name."""
    entry = out.nested_type.add(name="".join(p.capitalize() for p in name.split("_")) + "Entry")
    entry.options.map_entry = True
    for i, (fname, tname) in enumerate((("key", key), ("value", value)), start=1):
        fp = entry.field.add(name=fname, number=i, label=_FDP.LABEL_OPTIONAL)
        _set_type(fp, tname)
    return entry.name


def _field_proto(decl: str, full: str, out: Any, oneofs: list[str]) -> None:
    m = _FIELD.match(decl.strip())
    if m is None:
        raise ValueError(f"bad field declaration in {full}: {decl!r}")
    repeated, type_name, map_key, map_value, name, number, opts = m.groups()
    fp = out.field.add(name=name, number=int(number))
    if map_key:
        fp.label = _FDP.LABEL_REPEATED
        fp.type, fp.type_name = _FDP.TYPE_MESSAGE, f"{full}.{_map_entry(out, name, map_key, map_value)}"
    else:
        fp.label = _FDP.LABEL_REPEATED if repeated else _FDP.LABEL_OPTIONAL
        _set_type(fp, type_name)
    for opt in (o.strip() for o in (opts or "").split(",") if o.strip()):
        if opt.startswith("oneof "):
            oneof = opt.split()[1]
            if oneof not in oneofs:
                oneofs.append(oneof)
                out.oneof_decl.add(name=oneof)
            fp.oneof_index = oneofs.index(oneof)
        elif opt == "packed=false":
            fp.options.packed = False
        else:
            raise ValueError(f"unknown field option {opt!r} in {full}")


def _message_proto(spec: Message, prefix: str, out: Any) -> None:
    out.name = spec.name
    full = f"{prefix}.{spec.name}"
    for e in spec.enums:
        _enum_proto(e, out.enum_type.add())
    for sub in spec.nested:
        _message_proto(sub, full, out.nested_type.add())
    oneofs: list[str] = []
    for decl in spec.fields:
        _field_proto(decl, full, out, oneofs)


def build_file(name: str, package: str, dependencies: list[str], messages: list[Message],
               enums: list[Enum] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """Adds one .proto file to the pool; returns its message classes by (dotted, nested) name."""
    fdp = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    fdp.dependency.extend(dependencies)
    _enum_names.update(f".{package}.{e.name}" for e in enums)
    for spec in messages:
        _declare_enums(f".{package}", spec)
    for e in enums:
        _enum_proto(e, fdp.enum_type.add())
    for spec in messages:
        _message_proto(spec, f".{package}", fdp.message_type.add())
    fd = POOL.Add(fdp)
    del fd
    classes: dict[str, Any] = {}
    for spec in messages:
        _collect(f"{package}.{spec.name}", spec, package, classes)
    return classes


def _collect(full: str, spec: Message, package: str, out: dict[str, Any]) -> None:
    out[full[len(package) + 1:]] = message_factory.GetMessageClass(POOL.FindMessageTypeByName(full))
    for sub in spec.nested:
        _collect(f"{full}.{sub.name}", sub, package, out)


def enum_values(full_name: str) -> dict[str, int]:
    """The values of an enum of the pool, by name."""
    return {v.name: v.number for v in POOL.FindEnumTypeByName(full_name).values}
