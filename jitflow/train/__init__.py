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
                                 NanLossDuringTrainingError, FinalOpsHook, FeedFnHook,
                                 SummarySaverHook)
from jitflow.train.monitored_session import (MonitoredTrainingSession, MonitoredSession,
                                             SingularMonitoredSession, Scaffold, ChiefSessionCreator)
from jitflow.train.optimizer import Optimizer
from jitflow.train.gradient_descent import GradientDescentOptimizer
from jitflow.train.momentum import MomentumOptimizer
from jitflow.train.adam import AdamOptimizer
from jitflow.train.adagrad import AdagradOptimizer
from jitflow.train.rmsprop import RMSPropOptimizer
from jitflow.train.training_util import (get_global_step, get_or_create_global_step, create_global_step,
                                         global_step, assert_global_step)
from jitflow.train.learning_rate_decay import (exponential_decay, natural_exp_decay, inverse_time_decay,
                                               polynomial_decay, cosine_decay, piecewise_constant,
                                               piecewise_constant_decay, cosine_decay_restarts, linear_cosine_decay)
from jitflow.train.device_setter import replica_device_setter
from jitflow.train.checkpoint import remove_checkpoint, get_checkpoint_mtimes
from jitflow.framework.importer import write_graph
from jitflow.protos.saver import SaverDef
from jitflow.distributed.cluster_spec import ClusterSpec
from jitflow.distributed.server import Server
from jitflow.train.ps_strategies import GreedyLoadBalancingStrategy, byte_size_load_fn
from jitflow.train.worker_session import WorkerSessionCreator
from jitflow.train.sync_replicas import SyncReplicasOptimizer
from jitflow.protos.example import Example, SequenceExample
from jitflow.protos.feature import (BytesList, FloatList, Int64List, Feature, Features, FeatureList,
                                    FeatureLists)
from jitflow.train.coordinator import Coordinator, LooperThread
from jitflow.train.queue_runner import QueueRunner, add_queue_runner, start_queue_runners
from jitflow.train.input import (batch, shuffle_batch, string_input_producer, slice_input_producer,
                                 range_input_producer, input_producer, limit_epochs)
from jitflow.summary_events import summary_iterator, SessionLog
from jitflow.train.checkpoint_init import init_from_checkpoint
from jitflow.train.supervisor import Supervisor
from jitflow.train.adadelta import AdadeltaOptimizer
from jitflow.train.ftrl import FtrlOptimizer
from jitflow.train.proximal import ProximalGradientDescentOptimizer, ProximalAdagradOptimizer
from jitflow.train.moving_averages import ExponentialMovingAverage
