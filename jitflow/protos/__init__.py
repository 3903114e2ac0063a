"""TensorFlow's protocol buffers as real `protobuf` messages, one module per TensorFlow .proto file.

The schemas are written in code (`_schema`), with TensorFlow's package, message names and field
numbers, so these messages read and write TensorFlow's bytes and `google.protobuf.text_format`
works on them. Fields that point into TensorFlow files not described here (function libraries,
full types, debug info, SavedObjectGraph, TypeSpecProto) are left out: when TensorFlow writes them
they are kept as unknown fields and written back unchanged.
"""
