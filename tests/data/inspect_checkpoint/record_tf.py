"""Records what TensorFlow's print_tensors_in_checkpoint_file prints for the tf_checkpoint fixture.

Run once with TensorFlow installed: `python record_tf.py` (writes expected.json beside this script).
"""
import contextlib
import io
import json
import os

from tensorflow.python.tools.inspect_checkpoint import print_tensors_in_checkpoint_file

here = os.path.dirname(os.path.abspath(__file__))
prefix = os.path.join(here, "..", "tf_checkpoint", "model.ckpt-3")
CASES = {
    "debug_string": dict(tensor_name="", all_tensors=False),
    "one_tensor": dict(tensor_name="w", all_tensors=False),
    "all_tensors": dict(tensor_name="", all_tensors=True),
    "all_names": dict(tensor_name="", all_tensors=False, all_tensor_names=True),
    "missing_tensor": dict(tensor_name="nope", all_tensors=False),
    "exclude": dict(tensor_name="", all_tensors=False, all_tensor_names=True, count_exclude_pattern="global"),
}
out = {}
for name, kw in CASES.items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_tensors_in_checkpoint_file(prefix, **kw)
    out[name] = buf.getvalue()
with open(os.path.join(here, "expected.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
