"""Checks with TensorFlow the files tests/data/jitflow_for_tf.py wrote (see there); prints one line per
check and exits non-zero on a mismatch."""
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf import text_format

tf.disable_v2_behavior()
D = sys.argv[1]
e = np.load(os.path.join(D, "expected.npz"))
feed = {"x:0": e["x"], "y_:0": e["y"]}
with tf.Graph().as_default(), tf.Session() as s:
    saver = tf.train.import_meta_graph(os.path.join(D, "model.ckpt.meta"))
    saver.restore(s, os.path.join(D, "model.ckpt"))
    assert np.allclose(s.run("out:0", feed), e["out"], rtol=1e-5, atol=1e-6)
    s.run(tf.get_collection("train_op")[0], feed)
    assert np.allclose(s.run("loss:0", feed), e["loss_after_step4"], rtol=1e-5), "training step differs"
    print("meta: imported, restored, one more step matches jitflow")
with tf.Graph().as_default(), tf.Session() as s:
    gd = tf.GraphDef.FromString(open(os.path.join(D, "frozen.pb"), "rb").read())
    tf.import_graph_def(gd, name="")
    assert np.allclose(s.run("out:0", {"x:0": e["x"]}), e["out"], rtol=1e-5, atol=1e-6)
    print("frozen graph: same outputs")
text_format.Parse(open(os.path.join(D, "graph.pbtxt")).read(), tf.GraphDef())
print("write_graph text: parses")
with tf.Graph().as_default(), tf.Session() as s:
    mg = tf.saved_model.loader.load(s, ["serve"], os.path.join(D, "saved_model"))
    sig = mg.signature_def["serving_default"]
    assert np.allclose(s.run(sig.outputs["out"].name, {sig.inputs["x"].name: e["x"]}), e["out"], rtol=1e-5)
    print("SavedModel: loads, same outputs")
