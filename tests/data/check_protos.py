"""Compares jitflow's protocol-buffer schemas (jitflow/protos) with TensorFlow's, field by field:

    python tests/data/check_protos.py dump /tmp/ours.bin            # with jitflow
    /path/to/tf/python tests/data/check_protos.py compare /tmp/ours.bin   # with TensorFlow

Prints every field whose name, number, type or label differs (the fields jitflow leaves out on
purpose are listed in jitflow/protos/__init__.py) and exits 1 if there are others.
"""
import sys

from google.protobuf import descriptor_pb2

FILES = ["types", "tensor_shape", "resource_handle", "tensor", "attr_value", "full_type", "node_def", "versions",
         "op_def", "graph", "variable", "saver", "meta_graph", "saved_model", "summary", "event"]
OMITTED = {".NodeDef.experimental_type", ".OpDef.ArgDef.experimental_full_type", ".GraphDef.library",
           ".GraphDef.debug_info", ".MetaGraphDef.object_graph_def", ".TensorInfo.CompositeTensor.type_spec"}


def dump(path: str) -> None:
    import importlib

    out = descriptor_pb2.FileDescriptorSet()
    for name in FILES:
        module = importlib.import_module(f"jitflow.protos.{name}")
        cls = next(v for v in vars(module).values() if hasattr(v, "DESCRIPTOR") and hasattr(v.DESCRIPTOR, "file"))
        cls.DESCRIPTOR.file.CopyToProto(out.file.add())
    with open(path, "wb") as f:
        f.write(out.SerializeToString())


def _walk(prefix: str, msg: descriptor_pb2.DescriptorProto, into: dict) -> None:
    for f in msg.field:
        into[f"{prefix}.{msg.name}.{f.name}"] = (f.number, f.type, f.label, f.type_name.rsplit(".", 1)[-1])
    for sub in msg.nested_type:
        _walk(f"{prefix}.{msg.name}", sub, into)
    for e in msg.enum_type:
        into[f"{prefix}.{msg.name}.{e.name}"] = [(v.name, v.number) for v in e.value]


def compare(path: str) -> int:
    import tensorflow  # noqa: F401 - registers TF's descriptors
    from google.protobuf import descriptor_pool

    ours = descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read())
    bad = 0
    for fd in ours.file:
        theirs = descriptor_pb2.FileDescriptorProto()
        descriptor_pool.Default().FindFileByName(fd.name).CopyToProto(theirs)
        a: dict = {}
        b: dict = {}
        for m in fd.message_type:
            _walk("", m, a)
        for m in theirs.message_type:
            _walk("", m, b)
        for e in fd.enum_type:
            a[e.name] = [(v.name, v.number) for v in e.value]
        for e in theirs.enum_type:
            b[e.name] = [(v.name, v.number) for v in e.value]
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key) and key not in OMITTED:
                print(fd.name, key, "jitflow:", a.get(key), "tensorflow:", b.get(key))
                bad += 1
    print(f"{len(ours.file)} files compared, {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2]))
