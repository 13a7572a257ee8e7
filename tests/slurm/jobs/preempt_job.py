"""Toy "training" job for the preemption tests: counts steps, checkpoints on USR1, requeues itself.

usage: preempt_job.py CKPT TOTAL_STEPS READY_FILE
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from posttrain.launch.preempt import PREEMPTED_EXIT_CODE, PreemptionHandler, requeue_self, restart_count

ckpt, total, ready = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
start = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
print(f"restart_count={restart_count()} resume_from={start} pid={os.getpid()}", flush=True)

with PreemptionHandler() as handler:
    ready.write_text(f"{os.getpid()}\n")
    step = start
    while step < total:
        # first run is slow so the test can preempt it; the resumed run finishes quickly
        time.sleep(0.05 if restart_count() == 0 else 0.0)
        step += 1
        if handler.preempted:
            ckpt.write_text(json.dumps({"step": step}))
            print(f"preempted at step={step}; checkpoint saved", flush=True)
            ok = requeue_self()
            print(f"requeue_self -> {ok}", flush=True)
            sys.exit(PREEMPTED_EXIT_CODE)

print(f"finished step={step} resumed_from={start}", flush=True)
