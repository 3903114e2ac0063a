"""Records the output_types/output_shapes/output_classes TensorFlow reports for a set of tf.data pipelines.

    python tests/data/make_tf_data_signatures.py > tests/data/tf_data_signatures.json

The test (tests/pipeline/test_signatures.py) builds the same pipelines with jitflow via `signatures(tf)`.
"""

import json

import numpy as np


def desc(x):
    if isinstance(x, dict):
        return {k: desc(v) for k, v in sorted(x.items())}
    if isinstance(x, tuple):
        return [desc(v) for v in x]
    if hasattr(x, "as_list"):
        return None if x.ndims is None else x.as_list()
    if hasattr(x, "name") and not isinstance(x, type):
        return x.name
    return x.__name__


def signatures(tf):
    """{case: [types, shapes, classes]} of each pipeline, built with the TF1-style module `tf`."""
    return {k: [desc(ds.output_types), desc(ds.output_shapes), desc(ds.output_classes)] for k, ds in cases(tf).items()}


def cases(tf):
    a = tf.data.Dataset.from_tensor_slices((np.zeros((5, 3), np.float32), np.arange(5)))
    gen = lambda: iter([1])  # noqa: E731
    return {
        "slices": a,
        "batch": a.batch(2),
        "batch_drop": a.batch(2, drop_remainder=True),
        "from_tensors": tf.data.Dataset.from_tensors({"a": 1, "b": [1.0, 2.0]}),
        "range": tf.data.Dataset.range(5),
        "padded": tf.data.Dataset.range(1, 4)
        .map(lambda n: tf.fill(tf.reshape(tf.cast(n, tf.int32), [1]), n))
        .padded_batch(2, [None]),
        "padded_fixed": tf.data.Dataset.range(1, 4)
        .map(lambda n: tf.fill(tf.reshape(tf.cast(n, tf.int32), [1]), n))
        .padded_batch(2, [5], drop_remainder=True),
        "gen": tf.data.Dataset.from_generator(gen, tf.int64),
        "gen_shaped": tf.data.Dataset.from_generator(gen, (tf.int64, tf.float32), ([], [None, 2])),
        "zip": tf.data.Dataset.zip((tf.data.Dataset.range(2), (a, tf.data.Dataset.range(3)))),
        "text": tf.data.TextLineDataset("/dev/null"),
        "map_list": a.map(lambda x, y: [x, y]),
        "unbatch": a.batch(2).unbatch(),
        "concat": tf.data.Dataset.from_tensors(np.zeros(3)).concatenate(tf.data.Dataset.from_tensors(np.zeros(4))),
        "flat_map": a.flat_map(lambda x, y: tf.data.Dataset.from_tensor_slices(x)),
        "py_list": tf.data.Dataset.from_tensor_slices([1, 2, 3]),
        "py_str": tf.data.Dataset.from_tensor_slices(["a", "b"]),
        "py_float": tf.data.Dataset.from_tensors(1.5),
        "shuffle_repeat": a.shuffle(3).repeat().take(4).skip(1).cache().prefetch(1),
    }


if __name__ == "__main__":
    import tensorflow.compat.v1 as tf1

    tf1.disable_v2_behavior()
    print(json.dumps(signatures(tf1), sort_keys=True, indent=1))
