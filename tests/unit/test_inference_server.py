"""``posttrain serve`` on loopback (port 0, in a thread) and the ThinkingBudgetClient against it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from posttrain.inference.budget import MODEL_CARD_CLOSE, generate_budgeted
from posttrain.inference.client import ClientError, ThinkingBudgetClient
from posttrain.inference.generate import generate_texts
from posttrain.inference.server import make_server, serve_main

CONTEXT = 64
MSGS = [{"role": "user", "content": "What is 2+3?"}]


@pytest.fixture(scope="module")
def served(tiny, tmp_path_factory):
    from posttrain.models import load_model, load_tokenizer, save_checkpoint

    ckpt = save_checkpoint(*tiny, tmp_path_factory.mktemp("serve") / "tiny-ck")
    server = make_server(str(ckpt), "127.0.0.1", 0, max_context=CONTEXT)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://{}:{}".format(*server.server_address[:2])
    yield url, load_model(str(ckpt)), load_tokenizer(str(ckpt))
    server.shutdown()
    server.server_close()


def post(url: str, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(("budget", "close"), [(3, None), (3, MODEL_CARD_CLOSE), (0, None)])
def test_client_matches_in_process_generation(served, budget, close):
    url, model, tok = served
    client = ThinkingBudgetClient(url, "tiny-ck", tokenizer=tok)
    got = client.chat_completion(MSGS, reasoning_budget=budget, max_tokens=6, close=close)
    text = tok.apply_chat_template(MSGS, add_generation_prompt=True, tokenize=False)
    (ref,) = generate_budgeted(model, tok, [text], budget=budget, max_tokens=6, grace_tokens=0, close=close)
    assert got["text"] == ref.text and got["forced_close"] and ref.forced_close
    assert got["content"] == ref.content and got["content"]
    assert got["completion_tokens"] == ref.total_tokens == 6 and got["finish_reason"] == "length"
    assert got["text"].count("</think>") == 1


def test_server_side_budget_extension(served):
    url, model, tok = served
    body = {"messages": MSGS, "max_tokens": 8, "thinking_budget": 2, "thinking_grace_tokens": 3}
    status, got = post(url, "/v1/chat/completions", body)
    text = tok.apply_chat_template(MSGS, add_generation_prompt=True, tokenize=False)
    (ref,) = generate_budgeted(model, tok, [text], budget=2, max_tokens=8, grace_tokens=3)
    assert status == 200 and got["choices"][0]["message"]["content"] == ref.text
    assert ref.forced_close and got["usage"]["completion_tokens"] == ref.total_tokens


def test_completion_equals_generate_and_models(served):
    url, model, tok = served
    status, body = post(
        url, "/v1/completions", {"model": "tiny-ck", "prompt": "def add(a, b):", "max_tokens": 6}
    )
    assert status == 200 and body["object"] == "text_completion"
    (ref,) = generate_texts(model, tok, ["def add(a, b):"], max_new_tokens=6)[0]
    assert body["choices"][0]["text"] == ref and body["usage"]["completion_tokens"] == 6
    stop = ref.strip()[2:5]
    status, cut = post(url, "/v1/completions", {"prompt": "def add(a, b):", "max_tokens": 6, "stop": [stop]})
    assert (
        cut["choices"][0]["text"] == ref[: ref.index(stop)] and cut["choices"][0]["finish_reason"] == "stop"
    )
    with urllib.request.urlopen(url + "/v1/models") as r:
        models = json.loads(r.read())
    assert [m["id"] for m in models["data"]] == ["tiny-ck"] and models["data"][0]["max_model_len"] == CONTEXT


def test_continue_final_message(served):
    url, _, tok = served
    prompt = tok.apply_chat_template(MSGS, add_generation_prompt=True, tokenize=False) + "five"
    msgs = [*MSGS, {"role": "assistant", "content": "<think>\nfive"}]
    body = {"messages": msgs, "max_tokens": 4, "continue_final_message": True, "add_generation_prompt": False}
    status, chat = post(url, "/v1/chat/completions", body)
    _, raw = post(url, "/v1/completions", {"prompt": prompt, "max_tokens": 4})
    assert status == 200 and chat["choices"][0]["message"]["content"] == raw["choices"][0]["text"]


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "code"),
    [
        ("/v1/chat/completions", b"{not json", 400, None, "invalid_json"),
        ("/v1/chat/completions", {"model": "tiny-ck", "max_tokens": 2}, 400, "messages", "missing"),
        ("/v1/completions", {"model": "tiny-ck", "max_tokens": 2}, 400, "prompt", "missing"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
        ("/v1/chat/completions", {"messages": MSGS, "max_tokens": -3}, 400, "max_tokens", "invalid_value"),
        (
            "/v1/completions",
            {"model": "gpt-4", "prompt": "hi", "max_tokens": 2},
            404,
            "model",
            "model_not_found",
        ),
        (
            "/v1/completions",
            {"prompt": "word " * 80, "max_tokens": 2},
            400,
            "prompt",
            "context_length_exceeded",
        ),
        (
            "/v1/completions",
            {"prompt": "hi", "max_tokens": CONTEXT},
            400,
            "max_tokens",
            "context_length_exceeded",
        ),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 2, "n": 2}, 400, "n", "invalid_value"),
        ("/v1/nothing", {}, 404, None, "not_found"),
        (
            "/v1/chat/completions",
            {"messages": MSGS, "max_tokens": 4, "thinking_budget": 9},
            400,
            "thinking_budget",
            "invalid_value",
        ),
    ],
)
def test_errors(served, path, body, status, param, code):
    got_status, got = post(served[0], path, body)
    assert got_status == status
    assert set(got["error"]) == {"message", "type", "param", "code"}
    assert got["error"]["param"] == param and got["error"]["code"] == code and got["error"]["message"]


def test_client_surfaces_server_errors(served):
    client = ThinkingBudgetClient(served[0], "other-model", tokenizer=served[2])
    with pytest.raises(ClientError, match="other-model") as e:
        client.chat_completion(MSGS, reasoning_budget=2, max_tokens=4)
    assert e.value.status == 404
    with pytest.raises(ValueError, match="reasoning_budget"):
        client.chat_completion(MSGS, reasoning_budget=5, max_tokens=4)


def test_serve_main_rejects_missing_checkpoint(tmp_path):
    from posttrain import PosttrainError

    with pytest.raises(PosttrainError, match="checkpoint"):
        serve_main([str(tmp_path / "missing"), "port=0"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["port=eighty"], r"posttrain serve: port: .*eighty"),
        (["max_concurrency=0"], r"posttrain serve: max_concurrency must be > 0, got 0"),
        (["--port", "0"], r"posttrain serve: unexpected argument '--port'; use key=value"),
        (["bogus=1"], r"posttrain serve: bogus: .*keys: checkpoint, host, port"),
    ],
)
def test_serve_main_names_the_bad_setting_before_loading_anything(tmp_path, args, message):
    from posttrain import PosttrainError

    with pytest.raises(PosttrainError, match=message):
        serve_main([str(tmp_path / "missing"), *args])
