"""`tf.train.WorkerSessionCreator`: a non-chief worker's session, created once the chief has initialized."""
from __future__ import annotations

import time
from typing import Any

from jitflow.errors import DeadlineExceededError
from jitflow.framework.graph import get_default_graph

from .monitored_session import Scaffold, _not_ready


class WorkerSessionCreator:
    """Creates a Session on `master`, waits until the model is ready (every variable initialized by the
    chief, polling every `recovery_wait_secs`), then runs the local init op.

    DeadlineExceededError when the model is still not ready after `max_wait_secs`.
    """

    def __init__(self, scaffold: Scaffold | None = None, master: str = "", config: Any = None,
                 max_wait_secs: float = 30 * 60, recovery_wait_secs: float = 0.5) -> None:
        self._scaffold = scaffold or Scaffold()
        self._master = master
        self._config = config
        self._max_wait_secs = max_wait_secs
        self._recovery_wait_secs = recovery_wait_secs

    def create_session(self) -> Any:
        from jitflow.session import Session

        sc = self._scaffold.finalize()
        sess = Session(self._master, graph=get_default_graph(), config=self._config)
        deadline = time.monotonic() + self._max_wait_secs
        while True:
            missing = _not_ready(sess, sc.ready_op)
            if not missing:
                break
            if time.monotonic() >= deadline:
                sess.close()
                raise DeadlineExceededError(None, None, f"Session was not ready after waiting "
                                                        f"{self._max_wait_secs} secs: uninitialized {missing}")
            time.sleep(self._recovery_wait_secs)
        if sc.local_init_op is not None:
            sess.run(sc.local_init_op, feed_dict=sc.local_init_feed_dict)
        return sess
