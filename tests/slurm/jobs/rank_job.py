"""Worker for the multi-process test: waits for USR1 (relayed by the stage wrapper) and records it.

usage: rank_job.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from posttrain.launch.preempt import PreemptionHandler

out = Path(sys.argv[1])
rank, world = os.environ["RANK"], os.environ["WORLD_SIZE"]
master = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
with PreemptionHandler() as handler:
    (out / f"ready-{rank}").write_text(f"{os.getpid()} world={world} master={master}\n")
    got = handler.wait(timeout=90)
print(f"rank {rank}/{world} got_usr1={got}", flush=True)
(out / f"done-{rank}").write_text(f"usr1={got}\n")
sys.exit(0 if got else 1)
