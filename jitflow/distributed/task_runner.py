"""One task of a launched program: a Ray actor that runs the program in a child process and collects its
output. Standard library only: Ray ships the class to its worker processes by value."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the actor's process ends, so no task outlives its actor (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TaskRunner:
    """Runs `argv` (its first item "{python}" means this process's interpreter) with `env` added."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        argv = [sys.executable if a == "{python}" else a for a in argv]
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1,
                                      preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def take(self) -> tuple[list[str], int | None]:
        """The output lines since the last call, and the exit status (None while it runs).

        The status is reported only once every line before it has been taken.
        """
        code = self._proc.poll()
        if code is not None:
            self._reader.join(timeout=5)
        with self._lock:
            lines, self._lines = self._lines, []
        return lines, code

    def kill(self) -> int:
        """Ends the task's process; returns its exit status."""
        if self._proc.poll() is None:
            self._proc.kill()
        return self._proc.wait(timeout=30)
