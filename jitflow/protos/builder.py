"""Registers a .proto file described in code and returns its message classes."""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FieldSpec = tuple  # (name, number, type, label, type_name or "", packed)

T = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = T.LABEL_OPTIONAL, T.LABEL_REPEATED
BYTES, FLOAT, INT64, STRING, MESSAGE = T.TYPE_BYTES, T.TYPE_FLOAT, T.TYPE_INT64, T.TYPE_STRING, T.TYPE_MESSAGE


def add_message(file: descriptor_pb2.FileDescriptorProto, name: str, fields: list[FieldSpec],
                oneof: str | None = None) -> descriptor_pb2.DescriptorProto:
    """Adds message `name` with `fields`; with `oneof`, every field belongs to that oneof."""
    msg = file.message_type.add(name=name)
    if oneof:
        msg.oneof_decl.add(name=oneof)
    for fname, number, ftype, label, type_name, packed in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if packed:
            f.options.packed = True
        if oneof:
            f.oneof_index = 0
    return msg


def add_map(msg: descriptor_pb2.DescriptorProto, full_name: str, field: str, number: int, value_type: str) -> None:
    """Adds `map<string, value_type> field = number;` to `msg` (named `full_name`) as a nested MapEntry."""
    entry = msg.nested_type.add(name="".join(p.capitalize() for p in field.split("_")) + "Entry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=STRING, label=OPTIONAL)
    entry.field.add(name="value", number=2, type=MESSAGE, label=OPTIONAL, type_name=value_type)
    msg.field.add(name=field, number=number, type=MESSAGE, label=REPEATED,
                  type_name=f".{full_name}.{entry.name}")


def new_file(name: str, package: str, deps: tuple[str, ...] = ()) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3", dependency=list(deps))


def register(file: descriptor_pb2.FileDescriptorProto) -> dict[str, Any]:
    """Adds `file` to the default pool (once) and returns its top-level message classes by name."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{m.name}"))
            for m in file.message_type}
