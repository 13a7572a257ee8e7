"""PreemptionHandler / requeue_self / PreemptionCallback without a cluster (no slurm marker)."""

from __future__ import annotations

import os
import signal
import stat
import types

import pytest

from posttrain.launch import preempt
from posttrain.launch.preempt import PREEMPTED_EXIT_CODE, PreemptionHandler, requeue_self, restart_count


def test_usr1_sets_flag_and_restores_previous_handler():
    seen = []

    def previous(signum, frame):
        seen.append(signum)

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        with PreemptionHandler() as handler:
            assert not handler.preempted and not handler
            assert signal.getsignal(signal.SIGUSR1) == handler._handle
            os.kill(os.getpid(), signal.SIGUSR1)
            assert handler.wait(timeout=5)
            assert handler.preempted and handler.check() and bool(handler)
            assert handler.signum == signal.SIGUSR1 and handler.received_at is not None
        assert signal.getsignal(signal.SIGUSR1) is previous
        assert seen == []  # the previous handler was not called while ours was installed
        os.kill(os.getpid(), signal.SIGUSR1)
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_sigterm_is_opt_in_and_restored():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionHandler() as h:
        assert signal.SIGTERM not in h.signals
        assert signal.getsignal(signal.SIGTERM) == before
    with PreemptionHandler(sigterm=True) as h:
        assert signal.getsignal(signal.SIGTERM) == h._handle
        os.kill(os.getpid(), signal.SIGTERM)
        assert h.wait(timeout=5) and h.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_wait_times_out_and_trigger():
    h = PreemptionHandler()
    assert h.wait(timeout=0.1) is False
    h.trigger()
    assert h.wait(timeout=0) is True and h.signum == signal.SIGUSR1


def test_must_be_main_thread():
    import threading

    errors = []

    def run():
        try:
            with PreemptionHandler():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert errors and "main thread" in str(errors[0])


def test_requeue_self_outside_and_inside_slurm(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeue_self() is False
    assert restart_count() == 0
    # fake scontrol on PATH records its argv
    fake = tmp_path / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert requeue_self() is True
    assert (tmp_path / "args").read_text().split() == ["requeue", "4242"]
    assert restart_count() == 2
    fake.write_text("#!/bin/sh\necho 'scontrol: error: Job is not requeueable' >&2\nexit 1\n")
    assert requeue_self() is False
    assert PREEMPTED_EXIT_CODE == 75


def test_preemption_callback_requests_save_and_stop():
    pytest.importorskip("transformers")
    from transformers import TrainerCallback, TrainerControl

    from posttrain.launch.preempt import PreemptionCallback

    assert issubclass(PreemptionCallback, TrainerCallback)
    assert preempt.PreemptionCallback is PreemptionCallback  # cached lazy class
    handler = PreemptionHandler()
    cb = PreemptionCallback(handler)
    control, state = TrainerControl(), types.SimpleNamespace(global_step=7)
    cb.on_step_end(None, state, control)
    assert not control.should_save and not control.should_training_stop and not cb.preempted
    with handler:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert handler.wait(timeout=5)
    state.global_step = 8
    out = cb.on_step_end(None, state, control)
    assert out is control and control.should_save and control.should_training_stop
    assert cb.preempted and cb.step == 8


def test_module_does_not_import_posttrain_or_transformers_eagerly():
    import subprocess
    import sys

    code = (
        "import sys, posttrain.launch.preempt as p; "
        "bad = sorted(m for m in sys.modules if m == 'transformers' or "
        "(m.startswith('posttrain') and m not in ('posttrain', 'posttrain.launch', 'posttrain.launch.preempt'))); "
        "assert not bad, bad"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_stage_preemption_hands_the_stage_callbacks_and_a_flag(monkeypatch):
    """What the runner gives a stage: ``preemption()``'s callbacks go into the frozen ``StageInputs``,
    and its ``preempted()`` turns true once USR1 arrived and the Trainer reached a step boundary."""
    import dataclasses
    from pathlib import Path

    from transformers import TrainerControl

    from posttrain.launch.preemption import preemption
    from posttrain.stages.base import StageInputs

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("POSTTRAIN_PREEMPTION", raising=False)
    with preemption() as off:
        assert off.callbacks == [] and not off.preempted() and off.requeue() is False
    monkeypatch.setenv("POSTTRAIN_PREEMPTION", "1")
    with preemption() as pre:
        inputs = StageInputs(
            "sft", Path("s"), "ck", Path("d"), callbacks=[*pre.callbacks], preempted=pre.preempted
        )
        (cb,) = inputs.callbacks
        state, control = types.SimpleNamespace(global_step=3), TrainerControl()
        cb.on_step_end(None, state, control)
        assert not inputs.preempted()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert pre.handler.wait(timeout=5)
        cb.on_step_end(None, state, control)
        assert inputs.preempted() and control.should_save and control.should_training_stop
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.report_to = ["wandb"]  # type: ignore[misc]
    assert StageInputs("x", Path("s"), "ck", Path("d")).preempted() is False
