"""The `checkpoint` file: CheckpointState in protobuf text format, read leniently and written atomically."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from . import atomic

logger = logging.getLogger("jitflow.train")

DEFAULT_FILENAME = "checkpoint"


@dataclass
class CheckpointState:
    """TF's CheckpointState: the newest checkpoint and every one still kept, oldest first."""

    model_checkpoint_path: str = ""
    all_model_checkpoint_paths: list[str] = field(default_factory=list)
    all_model_checkpoint_timestamps: list[float] = field(default_factory=list)
    last_preserved_timestamp: float = 0.0


class ParseError(ValueError):
    """The `checkpoint` file is not valid CheckpointState text."""


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v", "?": "?"}
_SKIP = re.compile(r"(?:\s+|#[^\n]*)*")
_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(:?)")
_STRING = re.compile(r""""((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'""")
_NUMBER = re.compile(r"[-+]?[0-9A-Za-z_.+-]+")


def _unescape(body: str) -> str:
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt].encode()
            i += 2
        elif nxt in "xX":
            m = re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2:])
            if not m:
                raise ParseError("bad \\x escape")
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            assert m is not None
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        else:
            raise ParseError(f"unknown escape \\{nxt}")
    return out.decode("utf-8", errors="surrogateescape")


def _value(text: str, pos: int, name: str) -> tuple[str | float, int]:
    """A field value at `pos`: adjacent quoted strings (concatenated) or a number."""
    m = _STRING.match(text, pos)
    if m:
        parts = []
        while m:
            parts.append(_unescape(m.group(1) if m.group(1) is not None else m.group(2)))
            pos = _SKIP.match(text, m.end()).end()  # type: ignore[union-attr]
            m = _STRING.match(text, pos)
        return "".join(parts), pos
    m = _NUMBER.match(text, pos)
    if not m:
        raise ParseError(f"missing value for {name!r}")
    try:
        return float(m.group()), m.end()
    except ValueError:
        raise ParseError(f"bad number {m.group()!r} for {name!r}") from None


_STRING_FIELDS = ("model_checkpoint_path", "all_model_checkpoint_paths")
_NUMBER_FIELDS = ("all_model_checkpoint_timestamps", "last_preserved_timestamp")


def parse(text: str) -> CheckpointState:
    """Parses CheckpointState text; unknown fields or malformed text → ParseError."""
    state = CheckpointState()
    pos = _SKIP.match(text, 0).end()  # type: ignore[union-attr]
    while pos < len(text):
        m = _NAME.match(text, pos)
        if not m or not m.group(2):
            raise ParseError(f"cannot parse checkpoint state near {text[pos:pos + 40]!r}")
        name = m.group(1)
        value, pos = _value(text, _SKIP.match(text, m.end()).end(), name)  # type: ignore[union-attr]
        if name in _STRING_FIELDS and not isinstance(value, str):
            raise ParseError(f"{name} needs a quoted string")
        if name in _NUMBER_FIELDS and not isinstance(value, float):
            raise ParseError(f"{name} needs a number")
        if name == "model_checkpoint_path":
            state.model_checkpoint_path = str(value)
        elif name == "all_model_checkpoint_paths":
            state.all_model_checkpoint_paths.append(str(value))
        elif name == "all_model_checkpoint_timestamps":
            state.all_model_checkpoint_timestamps.append(float(value))
        elif name == "last_preserved_timestamp":
            state.last_preserved_timestamp = float(value)
        else:
            raise ParseError(f"unknown field {name!r} in checkpoint state")
        pos = _SKIP.match(text, pos).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] in ",;":
            pos = _SKIP.match(text, pos + 1).end()  # type: ignore[union-attr]
    return state


def _quote(s: str) -> str:
    out = []
    for b in s.encode("utf-8", errors="surrogateescape"):
        c = chr(b)
        if c in "\"'\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")  # protobuf text format escapes non-printable bytes in octal
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _number(x: float) -> str:
    return repr(float(x))


def to_text(state: CheckpointState) -> str:
    """Serializes a CheckpointState the way protobuf's text format does."""
    lines = []
    if state.model_checkpoint_path:
        lines.append(f"model_checkpoint_path: {_quote(state.model_checkpoint_path)}")
    lines += [f"all_model_checkpoint_paths: {_quote(p)}" for p in state.all_model_checkpoint_paths]
    lines += [f"all_model_checkpoint_timestamps: {_number(t)}" for t in state.all_model_checkpoint_timestamps]
    if state.last_preserved_timestamp:
        lines.append(f"last_preserved_timestamp: {_number(state.last_preserved_timestamp)}")
    return "".join(line + "\n" for line in lines)


def checkpoint_filename(checkpoint_dir: str, latest_filename: str | None = None) -> str:
    """The path of the state file in `checkpoint_dir`."""
    return os.path.join(checkpoint_dir, latest_filename or DEFAULT_FILENAME)


def get_checkpoint_state(checkpoint_dir: str, latest_filename: str | None = None) -> CheckpointState | None:
    """Reads the state file in `checkpoint_dir`; relative paths are resolved against that directory.

    Returns None when the file is absent, unreadable or malformed (with a warning, as TF does); raises
    ValueError when it parses but names no model_checkpoint_path.
    """
    path = checkpoint_filename(checkpoint_dir, latest_filename)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        logger.warning("%s: %s; checkpoint ignored", path, e)
        return None
    try:
        state = parse(text)
    except ParseError as e:
        logger.warning("%s: %s; checkpoint ignored", path, e)
        return None
    if not state.model_checkpoint_path:
        raise ValueError("Invalid checkpoint state loaded from " + checkpoint_dir)
    if not os.path.isabs(state.model_checkpoint_path):
        state.model_checkpoint_path = os.path.join(checkpoint_dir, state.model_checkpoint_path)
    state.all_model_checkpoint_paths = [p if os.path.isabs(p) else os.path.join(checkpoint_dir, p)
                                        for p in state.all_model_checkpoint_paths]
    return state


def generate_checkpoint_state_proto(save_dir: str, model_checkpoint_path: str,
                                    all_model_checkpoint_paths: list[str] | None = None,
                                    all_model_checkpoint_timestamps: list[float] | None = None,
                                    last_preserved_timestamp: float | None = None) -> CheckpointState:
    """Builds a CheckpointState; the newest path is appended if missing, and relative paths are made
    relative to a relative `save_dir`, as TF does."""
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    stamps = list(all_model_checkpoint_timestamps or [])
    if stamps and len(stamps) != len(paths):
        raise ValueError(f"Checkpoint timestamps ({len(stamps)}) must match checkpoint paths ({len(paths)})")
    if not os.path.isabs(save_dir):
        if not os.path.isabs(model_checkpoint_path):
            model_checkpoint_path = os.path.relpath(model_checkpoint_path, save_dir)
        paths = [p if os.path.isabs(p) else os.path.relpath(p, save_dir) for p in paths]
    return CheckpointState(model_checkpoint_path, paths, stamps, float(last_preserved_timestamp or 0.0))


def update_checkpoint_state(save_dir: str, model_checkpoint_path: str,
                            all_model_checkpoint_paths: list[str] | None = None,
                            latest_filename: str | None = None,
                            all_model_checkpoint_timestamps: list[float] | None = None,
                            last_preserved_timestamp: float | None = None,
                            save_relative_paths: bool = False) -> None:
    """Atomically rewrites the state file in `save_dir`."""
    coord = checkpoint_filename(save_dir, latest_filename)
    paths = list(all_model_checkpoint_paths or [])
    if save_relative_paths:
        model_checkpoint_path = _relative(model_checkpoint_path, save_dir)
        paths = [_relative(p, save_dir) for p in paths]
    state = generate_checkpoint_state_proto(save_dir, model_checkpoint_path, paths,
                                            all_model_checkpoint_timestamps, last_preserved_timestamp)
    if os.path.abspath(coord) == os.path.abspath(os.path.join(save_dir, state.model_checkpoint_path)):
        raise RuntimeError(f"Save path '{model_checkpoint_path}' conflicts with path used for checkpoint "
                           "state. Please use a different save path.")
    atomic.write_atomic(coord, to_text(state).encode("utf-8", errors="surrogateescape"))


def _relative(path: str, save_dir: str) -> str:
    return os.path.relpath(path, save_dir) if os.path.isabs(path) else path


def checkpoint_exists(checkpoint_prefix: str) -> bool:
    """True if a V2 checkpoint (`prefix.index`) or a V1 file named `prefix` exists."""
    return os.path.isfile(checkpoint_prefix + ".index") or os.path.isfile(checkpoint_prefix)


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The prefix of the newest checkpoint recorded in `checkpoint_dir`, or None if there is none on disk."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state and state.model_checkpoint_path:
        if checkpoint_exists(state.model_checkpoint_path):
            return state.model_checkpoint_path
        logger.error("Couldn't match files for checkpoint %s", state.model_checkpoint_path)
    return None


def get_checkpoint_mtimes(checkpoint_prefixes: list[str]) -> list[float]:
    """Modification times of the given checkpoints' index files (missing ones are skipped)."""
    out = []
    for prefix in checkpoint_prefixes:
        try:
            out.append(os.path.getmtime(prefix + ".index"))
        except OSError:
            try:
                out.append(os.path.getmtime(prefix))
            except OSError:
                pass
    return out


def remove_checkpoint(checkpoint_prefix: str, checkpoint_format_version: int = 2,
                      meta_graph_suffix: str = "meta") -> None:
    """Deletes every file of the checkpoint at `checkpoint_prefix` (index, data shards, meta graph)."""
    directory = os.path.dirname(checkpoint_prefix) or "."
    base = os.path.basename(checkpoint_prefix)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name in (f"{base}.index", f"{base}.{meta_graph_suffix}", base) or \
                (name.startswith(f"{base}.data-") and "-of-" in name):
            atomic.discard(os.path.join(directory, name))
