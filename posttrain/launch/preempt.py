"""Graceful preemption under Slurm: catch USR1, checkpoint, requeue, exit.

The stage sbatch script (``posttrain/launch/templates/stage.sbatch.j2``) asks Slurm for
``--signal=B:USR1@<seconds>`` before the time limit and forwards that USR1 to the stage process
(``scancel --signal=USR1 --batch <id>`` does the same by hand).  Typical use in a training stage::

    with PreemptionHandler() as handler:
        callback = PreemptionCallback(handler)
        trainer = Trainer(..., callbacks=[callback])
        trainer.train(resume_from_checkpoint=latest_checkpoint_or_none)
    if callback.preempted:  # the Trainer saved a checkpoint and stopped at a step boundary
        requeue_self()
        sys.exit(PREEMPTED_EXIT_CODE)

On restart Slurm sets ``SLURM_RESTART_COUNT`` >= 1; the stage resumes from its last checkpoint.
This module has no posttrain imports; ``transformers`` is only imported when
``PreemptionCallback`` is first accessed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "PreemptionCallback",  # noqa: F822 -- created lazily by __getattr__ (imports transformers)
    "PreemptionHandler",
    "requeue_self",
    "restart_count",
]

#: exit code of a process that checkpointed and requeued itself (EX_TEMPFAIL)
PREEMPTED_EXIT_CODE = 75


class PreemptionHandler:
    """Context manager: while active, USR1 (and optionally TERM) only set :attr:`preempted`.

    The previous handlers are restored on exit.  Must be entered from the main thread (Python only
    delivers signals there).  ``check()``/``bool(handler)`` poll the flag from a training loop.
    """

    def __init__(self, *, sigterm: bool = False, signals: tuple[int, ...] | None = None):
        sigs = tuple(signals) if signals is not None else (signal.SIGUSR1,)
        if sigterm and signal.SIGTERM not in sigs:
            sigs += (signal.SIGTERM,)
        self.signals = sigs
        self._flag = False  # a plain bool: never take a lock inside a signal handler
        self.signum: int | None = None
        self.received_at: float | None = None
        self._previous: dict[int, object] = {}

    # -- flag ---------------------------------------------------------------------------------
    @property
    def preempted(self) -> bool:
        return self._flag

    def check(self) -> bool:
        return self._flag

    __bool__ = check

    def trigger(self, signum: int = signal.SIGUSR1) -> None:
        """Set the flag as if ``signum`` had arrived (tests, or a watchdog thread)."""
        if self.signum is None:
            self.signum, self.received_at = signum, time.time()
        self._flag = True

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Block until the flag is set (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)  # interrupted by the signal; the handler runs in between
        return True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.trigger(signum)
        print(
            f"[posttrain.preempt] received {signal.Signals(signum).name}; will checkpoint and stop",
            file=sys.stderr,
            flush=True,
        )

    # -- context manager ----------------------------------------------------------------------
    def __enter__(self) -> PreemptionHandler:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("PreemptionHandler must be installed from the main thread")
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._previous.clear()


def restart_count() -> int:
    """How many times Slurm has restarted (requeued) this job; 0 outside Slurm."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


def requeue_self(job_id: str | None = None, *, timeout: float = 30.0) -> bool:
    """``scontrol requeue <job>`` for the current Slurm job; False (and no-op) outside Slurm.

    The job must be requeueable (the stage template sets ``--requeue``).  Slurm then ends this run
    (TERM, KILL after KillWait) and puts the job back in the queue with the same id, keeping its
    dependents waiting; call it right before exiting with :data:`PREEMPTED_EXIT_CODE`.
    """
    job_id = job_id or os.environ.get("SLURM_JOB_ID")  # for array tasks this is the task's own id
    if not job_id:
        return False
    try:
        res = subprocess.run(
            ["scontrol", "requeue", str(job_id)], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"[posttrain.preempt] scontrol requeue {job_id} failed: {exc}", file=sys.stderr, flush=True)
        return False
    if res.returncode != 0:
        print(
            f"[posttrain.preempt] scontrol requeue {job_id} failed (exit {res.returncode}): "
            f"{res.stderr.strip()}",
            file=sys.stderr,
            flush=True,
        )
        return False
    print(f"[posttrain.preempt] requeued Slurm job {job_id}", file=sys.stderr, flush=True)
    return True


_callback_cls = None


def _make_callback_cls():
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        """Stop training at the next step boundary with a checkpoint once ``handler`` fired.

        After ``trainer.train()`` returns, :attr:`preempted` tells the caller to
        :func:`requeue_self` and exit with :data:`PREEMPTED_EXIT_CODE`; :attr:`step` is the global
        step at which the checkpoint was requested.
        """

        def __init__(self, handler: PreemptionHandler):
            self.handler = handler
            self.preempted = False
            self.step: int | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if self.handler.preempted and not self.preempted:
                self.preempted = True
                self.step = state.global_step
                control.should_save = True
                control.should_training_stop = True
            return control

    return PreemptionCallback


def __getattr__(name: str):
    # lazy so that importing this module in a batch job does not pay for importing transformers
    global _callback_cls
    if name == "PreemptionCallback":
        if _callback_cls is None:
            _callback_cls = _make_callback_cls()
        return _callback_cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
