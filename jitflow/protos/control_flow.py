"""TensorFlow's tensorflow/core/protobuf/control_flow.proto: the v1 control-flow contexts a MetaGraphDef
keeps in its `while_context` / `cond_context` collections.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos._schema import Message, build_file

_classes = build_file('tensorflow/core/protobuf/control_flow.proto', 'tensorflow', [], [
    Message('ValuesDef', [
        'repeated string values = 1',
        'map<string, string> external_values = 2',
    ]),
    Message('ControlFlowContextDef', [
        '.tensorflow.CondContextDef cond_ctxt = 1 [oneof ctxt]',
        '.tensorflow.WhileContextDef while_ctxt = 2 [oneof ctxt]',
    ]),
    Message('CondContextDef', [
        'string context_name = 1',
        'string pred_name = 2',
        'string pivot_name = 3',
        'int32 branch = 4',
        '.tensorflow.ValuesDef values_def = 5',
        'repeated .tensorflow.ControlFlowContextDef nested_contexts = 6',
    ]),
    Message('WhileContextDef', [
        'string context_name = 1',
        'int32 parallel_iterations = 2',
        'bool back_prop = 3',
        'bool swap_memory = 4',
        'string pivot_name = 5',
        'string pivot_for_pred_name = 6',
        'string pivot_for_body_name = 7',
        'repeated string loop_exit_names = 8',
        'repeated string loop_enter_names = 10',
        '.tensorflow.ValuesDef values_def = 9',
        'string maximum_iterations_name = 11',
        'repeated .tensorflow.ControlFlowContextDef nested_contexts = 12',
    ]),
])

ValuesDef = _classes['ValuesDef']
ControlFlowContextDef = _classes['ControlFlowContextDef']
CondContextDef = _classes['CondContextDef']
WhileContextDef = _classes['WhileContextDef']
