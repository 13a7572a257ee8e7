"""Stage-level preemption: inside a Slurm job, USR1 (sent ``--signal=B:USR1@N`` before the time
limit, or by an admin) makes a training stage save a trainer checkpoint at the next step, stop,
and requeue its own job; the requeued job resumes the stage from that checkpoint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from posttrain.launch.preempt import PreemptionCallback, PreemptionHandler, requeue_self


class _Active:
    def __init__(self, handler: PreemptionHandler | None):
        self.handler = handler

    def requeue(self) -> bool:
        return requeue_self() if self.handler is not None else False


def enabled() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID")) or os.environ.get("POSTTRAIN_PREEMPTION") == "1"


@contextmanager
def preemption(inputs) -> Iterator[_Active]:
    """Install the USR1 handler and add a ``PreemptionCallback`` to the stage's callbacks."""
    if not enabled() or threading.current_thread() is not threading.main_thread():
        yield _Active(None)
        return
    with PreemptionHandler() as handler:
        inputs.callbacks.append(PreemptionCallback(handler))
        yield _Active(handler)
