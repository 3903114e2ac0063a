"""Runs one article program as written, under jitflow or TensorFlow, and prints what it prints.

usage: run_article.py jitflow|tf PROGRAM.py

`import tensorflow as tf` (and `from tensorflow.python... import ...`) means the backend: TensorFlow's
tf.compat.v1 with v2 behaviour off, or jitflow. The program runs in a fresh temporary directory, so
relative paths (`log/model.ckpt`) land there.
"""
import importlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Maps `tensorflow.x.y` onto `jitflow.x.y`."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("jitflow" + spec.name[len("tensorflow"):])

    def exec_module(self, module):
        pass


def install(backend):
    if backend == "tf":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        tf.logging.set_verbosity(tf.logging.ERROR)
        sys.modules["tensorflow"] = tf
    else:
        sys.meta_path.insert(0, _Alias())


def main(backend, path):
    src = open(path).read()
    install(backend)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        exec(compile(src, path, "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main(sys.argv[1], os.path.abspath(sys.argv[2]))
