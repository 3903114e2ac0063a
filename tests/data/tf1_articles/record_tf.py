"""Records what TensorFlow prints for every article program here into expected.json.

Run once with TensorFlow installed (tf.compat.v1 graph mode): `python record_tf.py`. The jitflow tests
(tests/test_tf1_articles.py) run the same programs unchanged and compare with these outputs.
"""
import glob
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = {}
for path in sorted(glob.glob(os.path.join(here, "item*.py"))):
    res = subprocess.run([sys.executable, os.path.join(here, "run_article.py"), "tf", path],
                         capture_output=True, text=True, check=True)
    out[os.path.basename(path)] = res.stdout
with open(os.path.join(here, "expected.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
