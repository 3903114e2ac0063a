"""`print_tensors_in_checkpoint_file`: TF 1.x's checkpoint inspector (also `jitflow inspect-checkpoint`).

Prints what TF 1.15 prints: the reader's debug string (one `name (DT_FLOAT) [2,3]` line per tensor), or
`tensor_name:  NAME` lines with the values, then the total number of parameters. Errors are printed,
not raised, as TF's tool does.
"""
from __future__ import annotations

import re

import numpy as np

from jitflow.train.checkpoint.reader import CheckpointReader, NewCheckpointReader


def _count_total_params(reader: CheckpointReader, count_exclude_pattern: str = "") -> int:
    """Elements of every tensor, except those whose name matches `count_exclude_pattern` (reported)."""
    shapes = reader.get_variable_to_shape_map()
    if count_exclude_pattern:
        pat = re.compile(count_exclude_pattern)
        excluded = {k: v for k, v in shapes.items() if pat.search(k)}
        n_excluded = sum(int(np.prod(v)) for v in excluded.values())
        print(f"# Excluding {len(excluded)} tensors ({n_excluded} params) that match {count_exclude_pattern} "
              "when counting.")
        shapes = {k: v for k, v in shapes.items() if k not in excluded}
    return sum(int(np.prod(v)) for v in shapes.values())


def print_tensors_in_checkpoint_file(file_name: str, tensor_name: str, all_tensors: bool,
                                     all_tensor_names: bool = False, count_exclude_pattern: str = "") -> None:
    """Prints the tensors of the checkpoint at prefix `file_name`: one (`tensor_name`), all of them
    (`all_tensors`, with values; `all_tensor_names`, names only) or the list of names, dtypes and shapes."""
    try:
        reader = NewCheckpointReader(file_name)
        if all_tensors or all_tensor_names:
            for key in sorted(reader.get_variable_to_shape_map()):
                print("tensor_name: ", key)
                if all_tensors:
                    print(reader.get_tensor(key))
        elif not tensor_name:
            print(reader.debug_string().decode("utf-8"))
        else:
            if not reader.has_tensor(tensor_name):
                print(f"Tensor {tensor_name} not found in checkpoint")
                return
            print("tensor_name: ", tensor_name)
            print(reader.get_tensor(tensor_name))
        print("# Total number of params: %d" % _count_total_params(reader, count_exclude_pattern))  # noqa: UP031
    except Exception as e:  # noqa: BLE001 - TF's tool prints the error and returns
        print(str(e))
        if any(ext in file_name for ext in (".index", ".meta", ".data")):
            proposed = ".".join(file_name.split(".")[:-1])
            print("\nIt's likely that this is a V2 checkpoint and you need to provide the filename\n*prefix*.  "
                  f"Try removing the '.' and everything after it, like this: {proposed}")


def main(argv: list[str] | None = None) -> int:
    """`jitflow inspect-checkpoint PATH [--tensor NAME] [--all] [--all-tensor-names]`."""
    import argparse

    p = argparse.ArgumentParser(prog="jitflow inspect-checkpoint",
                                description="Print the tensors of a TensorFlow checkpoint (give its prefix).")
    p.add_argument("path", metavar="PATH", help="the checkpoint prefix, e.g. log/model.ckpt-100")
    p.add_argument("--tensor", "--tensor_name", dest="tensor", default="", help="print only this tensor")
    p.add_argument("--all", "--all_tensors", dest="all", action="store_true", help="print every tensor's value")
    p.add_argument("--all-tensor-names", "--all_tensor_names", dest="names", action="store_true",
                   help="print every tensor's name")
    p.add_argument("--count-exclude-pattern", default="", help="regex of tensors not counted in the total")
    args = p.parse_args(argv)
    print_tensors_in_checkpoint_file(args.path, args.tensor, args.all, args.names, args.count_exclude_pattern)
    return 0
