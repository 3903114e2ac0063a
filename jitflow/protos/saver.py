"""TensorFlow's tensorflow/core/protobuf/saver.proto: SaverDef.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Enum, Message, build_file

_classes = build_file('tensorflow/core/protobuf/saver.proto', 'tensorflow', [], [
    Message('SaverDef', [
        'string filename_tensor_name = 1',
        'string save_tensor_name = 2',
        'string restore_op_name = 3',
        'int32 max_to_keep = 4',
        'bool sharded = 5',
        'float keep_checkpoint_every_n_hours = 6',
        '.tensorflow.SaverDef.CheckpointFormatVersion version = 7',
    ], enums=[
        Enum('CheckpointFormatVersion', [
            ('LEGACY', 0), ('V1', 1), ('V2', 2)
        ]),
    ]),
])

SaverDef = _classes['SaverDef']
