"""Worker for the 2-node test: joins torchrun's world over gloo and records what it saw.

usage: allreduce_job.py OUT_DIR   (writes OUT_DIR/rank-<RANK>.json)

Each rank contributes ``rank + 1`` to an all_reduce (so the sum is ``W (W + 1) / 2``) and its
``SLURM_NODEID`` to an all_gather, so the file shows which Slurm nodes the world spans.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

out = Path(sys.argv[1])
dist.init_process_group("gloo", timeout=timedelta(seconds=60))
rank, world = dist.get_rank(), dist.get_world_size()
node_id = int(os.environ["SLURM_NODEID"])
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
node_ids = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
dist.all_gather(node_ids, torch.tensor([node_id]))
record = {
    "rank": rank,
    "world_size": world,
    "local_rank": int(os.environ["LOCAL_RANK"]),
    "group_rank": int(os.environ["GROUP_RANK"]),
    "slurm_nodeid": node_id,
    "slurmd_nodename": os.environ.get("SLURMD_NODENAME"),
    "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    "run_id": os.environ.get("TORCHELASTIC_RUN_ID"),
    "hostname": socket.gethostname(),
    "all_reduce_sum": total.item(),
    "all_gather_node_ids": [int(t.item()) for t in node_ids],
}
(out / f"rank-{rank}.json").write_text(json.dumps(record) + "\n")
print(f"rank {rank}/{world} on {record['slurmd_nodename']}: {record}", flush=True)
dist.destroy_process_group()
