"""Stage-level preemption: inside a Slurm job, USR1 (sent ``--signal=B:USR1@N`` before the time limit,
or by an admin) makes a training stage save a trainer checkpoint at the next step, stop, and requeue
its own job; the requeued job resumes the stage from that checkpoint.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from posttrain.launch.preempt import PreemptionHandler, requeue_self


class Preemption:
    """What the runner hands a stage: the Trainer callbacks to add, and whether a signal stopped it."""

    def __init__(self, handler: PreemptionHandler | None):
        self.handler = handler
        self.callbacks: list[Any] = []
        if handler is not None:  # imported here: the callback class imports transformers' Trainer (~3 s)
            from posttrain.launch.preempt import PreemptionCallback

            self.callbacks.append(PreemptionCallback(handler))

    def preempted(self) -> bool:
        return any(cb.preempted for cb in self.callbacks)

    def requeue(self) -> bool:
        return requeue_self() if self.handler is not None else False


def enabled() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID")) or os.environ.get("POSTTRAIN_PREEMPTION") == "1"


@contextmanager
def preemption() -> Iterator[Preemption]:
    """Install the USR1 handler (in a Slurm job, or with ``POSTTRAIN_PREEMPTION=1``, on the main
    thread) for the duration of a stage; outside one, a ``Preemption`` that never fires."""
    if not enabled() or threading.current_thread() is not threading.main_thread():
        yield Preemption(None)
        return
    with PreemptionHandler() as handler:
        yield Preemption(handler)
