"""Device strings: parsing and merging `/job:ps/task:0/device:GPU:1` and the short `/gpu:1` form."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

_SHORT = re.compile(r"^(cpu|gpu|xla_cpu|xla_gpu|tpu):(\d+|\*)$", re.IGNORECASE)


@dataclass(frozen=True)
class DeviceSpec:
    """A (possibly partial) device specification; unset fields are None."""

    job: str | None = None
    replica: int | None = None
    task: int | None = None
    device_type: str | None = None
    device_index: int | None = None

    @staticmethod
    def from_string(spec: str | None) -> DeviceSpec:
        """Parses a TF device string; raises ValueError on malformed input."""
        out = DeviceSpec()
        if not spec:
            return out
        for part in spec.split("/"):
            if not part:
                continue
            m = _SHORT.match(part)
            if m:
                idx = None if m.group(2) == "*" else int(m.group(2))
                out = replace(out, device_type=m.group(1).upper(), device_index=idx)
                continue
            key, _, val = part.partition(":")
            if key == "job" and val:
                out = replace(out, job=val)
            elif key == "replica" and val.isdigit():
                out = replace(out, replica=int(val))
            elif key == "task" and val.isdigit():
                out = replace(out, task=int(val))
            elif key == "device" and val:
                dtype, _, ordinal = val.partition(":")
                out = replace(out, device_type=dtype.upper(),
                              device_index=int(ordinal) if ordinal.isdigit() else None)
            else:
                raise ValueError(f"Unknown attribute: '{part}' in '{spec}'")
        return out

    def merged_over(self, base: DeviceSpec) -> DeviceSpec:
        """This spec's set fields win; unset fields are taken from `base`."""
        return DeviceSpec(*(a if a is not None else b for a, b in zip(self._fields(), base._fields())))

    def _fields(self) -> tuple:
        return (self.job, self.replica, self.task, self.device_type, self.device_index)

    def to_string(self) -> str:
        s = ""
        if self.job is not None:
            s += f"/job:{self.job}"
        if self.replica is not None:
            s += f"/replica:{self.replica}"
        if self.task is not None:
            s += f"/task:{self.task}"
        if self.device_type is not None:
            s += f"/device:{self.device_type}:{'*' if self.device_index is None else self.device_index}"
        return s


def canonical(spec: str | None) -> str:
    """The canonical TF form of a device string ('/cpu:0' -> '/device:CPU:0')."""
    return DeviceSpec.from_string(spec).to_string()
