"""TensorFlow's checkpoint formats: the tensor bundle (LevelDB table index + raw data) and the state file."""
from .bundle import BundleReader, data_path, index_path, write_bundle
from .reader import CheckpointReader, NewCheckpointReader, list_variables, load_checkpoint, load_variable
from .state import (
    CheckpointState,
    checkpoint_exists,
    generate_checkpoint_state_proto,
    get_checkpoint_mtimes,
    get_checkpoint_state,
    latest_checkpoint,
    remove_checkpoint,
    update_checkpoint_state,
)

__all__ = [
    "BundleReader", "CheckpointReader", "CheckpointState", "NewCheckpointReader", "checkpoint_exists",
    "data_path", "generate_checkpoint_state_proto", "get_checkpoint_mtimes", "get_checkpoint_state",
    "index_path", "latest_checkpoint", "list_variables", "load_checkpoint", "load_variable",
    "remove_checkpoint", "update_checkpoint_state", "write_bundle",
]
