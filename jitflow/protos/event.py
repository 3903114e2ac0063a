"""TensorFlow's tensorflow/core/util/event.proto: Event: one record of an events file.

Field names and numbers are TensorFlow's (see `_schema`)."""
from __future__ import annotations

from jitflow.protos import summary as _summary  # noqa: F401 - registers the dependency
from jitflow.protos._schema import Enum, Message, build_file, enum_values

_classes = build_file('tensorflow/core/util/event.proto', 'tensorflow', [
    'tensorflow/core/framework/summary.proto',
], [
    Message('Event', [
        'double wall_time = 1',
        'int64 step = 2',
        'string file_version = 3 [oneof what]',
        'bytes graph_def = 4 [oneof what]',
        '.tensorflow.Summary summary = 5 [oneof what]',
        '.tensorflow.LogMessage log_message = 6 [oneof what]',
        '.tensorflow.SessionLog session_log = 7 [oneof what]',
        '.tensorflow.TaggedRunMetadata tagged_run_metadata = 8 [oneof what]',
        'bytes meta_graph_def = 9 [oneof what]',
        '.tensorflow.SourceMetadata source_metadata = 10',
    ]),
    Message('SourceMetadata', [
        'string writer = 1',
    ]),
    Message('LogMessage', [
        '.tensorflow.LogMessage.Level level = 1',
        'string message = 2',
    ], enums=[
        Enum('Level', [
            ('UNKNOWN', 0), ('DEBUGGING', 10), ('INFO', 20), ('WARN', 30), ('ERROR', 40),
            ('FATAL', 50)
        ]),
    ]),
    Message('SessionLog', [
        '.tensorflow.SessionLog.SessionStatus status = 1',
        'string checkpoint_path = 2',
        'string msg = 3',
    ], enums=[
        Enum('SessionStatus', [
            ('STATUS_UNSPECIFIED', 0), ('START', 1), ('STOP', 2), ('CHECKPOINT', 3)
        ]),
    ]),
    Message('TaggedRunMetadata', [
        'string tag = 1',
        'bytes run_metadata = 2',
    ]),
    Message('WatchdogConfig', [
        'int64 timeout_ms = 1',
    ]),
    Message('RequestedExitCode', [
        'int32 exit_code = 1',
    ]),
    Message('WorkerHeartbeatRequest', [
        '.tensorflow.WorkerShutdownMode shutdown_mode = 1',
        '.tensorflow.WatchdogConfig watchdog_config = 2',
        '.tensorflow.RequestedExitCode exit_code = 3',
    ]),
    Message('WorkerHeartbeatResponse', [
        '.tensorflow.WorkerHealth health_status = 1',
        'repeated .tensorflow.Event worker_log = 2',
        'string hostname = 3',
    ]),
], enums=[
    Enum('WorkerHealth', [
        ('OK', 0), ('RECEIVED_SHUTDOWN_SIGNAL', 1), ('INTERNAL_ERROR', 2), ('SHUTTING_DOWN', 3)
    ]),
    Enum('WorkerShutdownMode', [
        ('DEFAULT', 0), ('NOT_CONFIGURED', 1), ('WAIT_FOR_COORDINATOR', 2), ('SHUTDOWN_AFTER_TIMEOUT',
        3)
    ]),
])

Event = _classes['Event']
SourceMetadata = _classes['SourceMetadata']
LogMessage = _classes['LogMessage']
SessionLog = _classes['SessionLog']
TaggedRunMetadata = _classes['TaggedRunMetadata']
WatchdogConfig = _classes['WatchdogConfig']
RequestedExitCode = _classes['RequestedExitCode']
WorkerHeartbeatRequest = _classes['WorkerHeartbeatRequest']
WorkerHeartbeatResponse = _classes['WorkerHeartbeatResponse']
WorkerHealth = enum_values('tensorflow.WorkerHealth')
WorkerShutdownMode = enum_values('tensorflow.WorkerShutdownMode')
