"""TensorFlow's protocol-buffer messages, with descriptors built in code (one module per .proto file)."""
