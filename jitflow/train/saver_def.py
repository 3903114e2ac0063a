"""`tf.train.SaverDef`: the description of a Saver, with TF's checkpoint format versions.

jitflow writes V2 checkpoints (TF's tensor bundles) whatever `write_version` asks; the enum values are
TF's, so programs that pass `write_version=tf.train.SaverDef.V2` (or V1) run unchanged.
"""
from __future__ import annotations

from typing import Any


class SaverDef:
    """TF's SaverDef message: field names and defaults as in saver.proto."""

    LEGACY = 0
    V1 = 1
    V2 = 2

    class CheckpointFormatVersion:
        LEGACY = 0
        V1 = 1
        V2 = 2

    _FIELDS: dict[str, Any] = {"filename_tensor_name": "", "save_tensor_name": "", "restore_op_name": "",
                               "max_to_keep": 0, "sharded": False, "keep_checkpoint_every_n_hours": 0.0,
                               "version": 0}

    version: int

    def __init__(self, **fields: Any) -> None:
        unknown = set(fields) - set(self._FIELDS)
        if unknown:
            raise ValueError(f'Protocol message SaverDef has no "{sorted(unknown)[0]}" field.')
        for k, default in self._FIELDS.items():
            setattr(self, k, fields.get(k, default))
        if self.version not in (self.LEGACY, self.V1, self.V2):
            raise ValueError(f"Unknown enum value {self.version} for field version of SaverDef")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SaverDef) and all(getattr(self, k) == getattr(other, k) for k in self._FIELDS)

    def __repr__(self) -> str:
        return "SaverDef(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self._FIELDS) + ")"
