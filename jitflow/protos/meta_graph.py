"""TensorFlow's tensorflow/core/protobuf/meta_graph.proto: MetaGraphDef, CollectionDef, TensorInfo, SignatureDef.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import graph as _graph  # noqa: F401 - registers the dependency
from jitflow.protos import op_def as _op_def  # noqa: F401 - registers the dependency
from jitflow.protos import saver as _saver  # noqa: F401 - registers the dependency
from jitflow.protos import tensor as _tensor  # noqa: F401 - registers the dependency
from jitflow.protos import tensor_shape as _tensor_shape  # noqa: F401 - registers the dependency
from jitflow.protos import types as _types  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/protobuf/meta_graph.proto', 'tensorflow', [
    'google/protobuf/any.proto',
    'tensorflow/core/framework/graph.proto',
    'tensorflow/core/framework/op_def.proto',
    'tensorflow/core/framework/tensor.proto',
    'tensorflow/core/framework/tensor_shape.proto',
    'tensorflow/core/framework/types.proto',
    'tensorflow/core/protobuf/saver.proto',
], [
    Message('MetaGraphDef', [
        '.tensorflow.MetaGraphDef.MetaInfoDef meta_info_def = 1',
        '.tensorflow.GraphDef graph_def = 2',
        '.tensorflow.SaverDef saver_def = 3',
        'map<string, .tensorflow.CollectionDef> collection_def = 4',
        'map<string, .tensorflow.SignatureDef> signature_def = 5',
        'repeated .tensorflow.AssetFileDef asset_file_def = 6',
    ], nested=[
        Message('MetaInfoDef', [
            'string meta_graph_version = 1',
            '.tensorflow.OpList stripped_op_list = 2',
            '.google.protobuf.Any any_info = 3',
            'repeated string tags = 4',
            'string tensorflow_version = 5',
            'string tensorflow_git_version = 6',
            'bool stripped_default_attrs = 7',
            'map<string, string> function_aliases = 8',
        ]),
    ]),
    Message('CollectionDef', [
        '.tensorflow.CollectionDef.NodeList node_list = 1 [oneof kind]',
        '.tensorflow.CollectionDef.BytesList bytes_list = 2 [oneof kind]',
        '.tensorflow.CollectionDef.Int64List int64_list = 3 [oneof kind]',
        '.tensorflow.CollectionDef.FloatList float_list = 4 [oneof kind]',
        '.tensorflow.CollectionDef.AnyList any_list = 5 [oneof kind]',
    ], nested=[
        Message('NodeList', [
            'repeated string value = 1',
        ]),
        Message('BytesList', [
            'repeated bytes value = 1',
        ]),
        Message('Int64List', [
            'repeated int64 value = 1',
        ]),
        Message('FloatList', [
            'repeated float value = 1',
        ]),
        Message('AnyList', [
            'repeated .google.protobuf.Any value = 1',
        ]),
    ]),
    Message('TensorInfo', [
        'string name = 1 [oneof encoding]',
        '.tensorflow.TensorInfo.CooSparse coo_sparse = 4 [oneof encoding]',
        '.tensorflow.TensorInfo.CompositeTensor composite_tensor = 5 [oneof encoding]',
        '.tensorflow.DataType dtype = 2',
        '.tensorflow.TensorShapeProto tensor_shape = 3',
    ], nested=[
        Message('CooSparse', [
            'string values_tensor_name = 1',
            'string indices_tensor_name = 2',
            'string dense_shape_tensor_name = 3',
        ]),
        Message('CompositeTensor', [
            'repeated .tensorflow.TensorInfo components = 2',
        ]),
    ]),
    Message('SignatureDef', [
        'map<string, .tensorflow.TensorInfo> inputs = 1',
        'map<string, .tensorflow.TensorInfo> outputs = 2',
        'string method_name = 3',
        'map<string, .tensorflow.TensorProto> defaults = 4',
    ]),
    Message('AssetFileDef', [
        '.tensorflow.TensorInfo tensor_info = 1',
        'string filename = 2',
    ]),
])

MetaGraphDef = _classes['MetaGraphDef']
CollectionDef = _classes['CollectionDef']
TensorInfo = _classes['TensorInfo']
SignatureDef = _classes['SignatureDef']
AssetFileDef = _classes['AssetFileDef']
