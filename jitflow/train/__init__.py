"""`tf.train`: optimizers, Saver, checkpoints, MonitoredTrainingSession (re-exports only)."""
# ruff: noqa: F401, I001
from jitflow.train.checkpoint import (CheckpointReader, NewCheckpointReader, checkpoint_exists,
                                      generate_checkpoint_state_proto, get_checkpoint_state,
                                      latest_checkpoint, list_variables, load_checkpoint, load_variable,
                                      update_checkpoint_state)
from jitflow.train.checkpoint.state import CheckpointState
from jitflow.train.saver import Saver
from jitflow.train.meta_graph import export_meta_graph, import_meta_graph
from jitflow.train.hooks import (SessionRunHook, SessionRunArgs, SessionRunContext, SessionRunValues,
                                 SecondOrStepTimer, StopAtStepHook, CheckpointSaverHook,
                                 CheckpointSaverListener, LoggingTensorHook, StepCounterHook, NanTensorHook,
                                 NanLossDuringTrainingError, FinalOpsHook, FeedFnHook)
from jitflow.train.monitored_session import (MonitoredTrainingSession, MonitoredSession,
                                             SingularMonitoredSession, Scaffold, ChiefSessionCreator)
