"""The vLLM tier (``tests/vllm_tier``: a directory named ``vllm`` on ``sys.path`` shadows the vllm package,
and TRL then fails on its version): a real vLLM server (the CPU build, from ``.venv-vllm``) serving our tiny hybrid
NemotronH checkpoint. Skipped, with the reason, when the venv is not installed (``make vllm-venv``)."""

from __future__ import annotations

import pytest

from posttrain.inference.vllm_server import VLLMServer, vllm_python


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/vllm_tier/" in str(item.fspath):
            item.add_marker(pytest.mark.vllm)
            if vllm_python() is None:
                item.add_marker(
                    pytest.mark.skip(reason="no vLLM venv (.venv-vllm): `make vllm-venv` installs it")
                )


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny) -> str:
    from posttrain.models import save_checkpoint

    model, tok = tiny
    return str(save_checkpoint(model, tok, tmp_path_factory.mktemp("vllm") / "checkpoint"))


@pytest.fixture(scope="session")
def server(tiny_ckpt):
    """One server for the tier (each start costs 60-200 s here): with our trace markers as its reasoning
    config (``thinking_token_budget``), and started as TRL documents for its client (dev-mode endpoints, an
    NCCL weight-transfer engine); neither changes what a plain request generates."""
    import json
    import os

    os.environ["VLLM_SERVER_DEV_MODE"] = "1"
    extra = ("--weight-transfer-config", json.dumps({"backend": "nccl"}))
    try:
        with VLLMServer(tiny_ckpt, name="tiny", max_model_len=512, reasoning=True, extra_args=extra) as srv:
            yield srv
    finally:
        os.environ.pop("VLLM_SERVER_DEV_MODE", None)
