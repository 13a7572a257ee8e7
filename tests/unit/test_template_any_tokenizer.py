"""model.chat_template=nano2 on a ChatML tokenizer: flags, tags, tokens, masks, embedding rows, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from posttrain import PosttrainError
from posttrain.models.template import ADDED_TOKENS, CHATML, detect_markers, install_nano2

SYS, USR, AST, END = CHATML.system, CHATML.user, CHATML.assistant, CHATML.end
CORPUS = ["The quick brown fox jumps over the lazy dog. think about it: 12 + 30 = 42 <> / calls"] * 20


def chatml_tokenizer(special=("<|im_start|>", "<|im_end|>", "<|endoftext|>")) -> PreTrainedTokenizerFast:
    """A small real BPE with ChatML's special tokens and a ChatML template (like SmolLM2 / Qwen)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=special[1],
        bos_token=special[0],
        pad_token=special[1],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = (
        "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}"
    )
    return fast


@pytest.fixture(scope="module")
def pair():
    tok = chatml_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    before = {t: tok.encode(t, add_special_tokens=False) for t in ADDED_TOKENS}
    emb = model.get_input_embeddings().weight.detach().clone()
    out = model.get_output_embeddings().weight.detach().clone()
    model, tok = install_nano2(model, tok, tool_tokens=True)
    return model, tok, before, emb, out


def test_default_adds_only_the_think_tokens_and_tool_markers_stay_text():
    tok = chatml_tokenizer()
    n = len(tok)
    _, tok = install_nano2(None, tok)
    assert len(tok) == n + 2 and "<TOOLCALL>" not in tok.get_vocab()
    for t in ("<think>", "</think>"):
        assert len(tok.encode(t, add_special_tokens=False)) == 1
    ids = tok.encode('<TOOLCALL>[{"name": "f"}]</TOOLCALL><|im_end|>', add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == '<TOOLCALL>[{"name": "f"}]</TOOLCALL>'


def render(tok, msgs, **kw):
    return tok.apply_chat_template(msgs, tokenize=False, **kw)


def test_markers_detected_and_kept(pair):
    _, tok, *_ = pair
    assert detect_markers(tok) == CHATML
    msgs = [{"role": "user", "content": "2+2? /no_think"}, {"role": "assistant", "content": "4"}]
    assert render(tok, msgs) == f"{SYS}{END}\n{USR}2+2?{END}\n{AST}<think></think>4{END}\n"
    assert tok.eos_token == END and tok.pad_token != tok.eos_token


@pytest.mark.parametrize(
    "system,user,on",
    [
        ("/think", "/no_think q", False),
        ("/no_think", "q /think", True),
        ("", "q", True),
        ("/no_think", "q", False),
    ],
)
def test_flags_last_wins_and_are_stripped(pair, system, user, on):
    _, tok, *_ = pair
    out = render(
        tok,
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        add_generation_prompt=True,
    )
    assert out.endswith(f"{AST}<think>\n" if on else f"{AST}<think></think>")
    assert "/think" not in out.replace("</think>", "") and "/no_think" not in out


def test_tool_markers_rendered(pair):
    _, tok, *_ = pair
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    msgs = [
        {"role": "user", "content": "call f"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "content": "ok"},
    ]
    out = render(tok, msgs, tools=tools)
    assert "<AVAILABLE_TOOLS>" in out and '<TOOLCALL>[{"name": "f", "arguments": {}}]</TOOLCALL>' in out
    assert f"{USR}<TOOL_RESPONSE>ok</TOOL_RESPONSE>{END}" in out


def test_added_tokens_single_non_special_and_survive_decoding(pair):
    _, tok, *_ = pair
    for t in ADDED_TOKENS:
        ids = tok.encode(t, add_special_tokens=False)
        assert len(ids) == 1 and t not in tok.all_special_tokens
    ids = tok.encode("<think>\nx\n</think>\ny<|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nx\n</think>\ny"


def test_new_rows_are_the_mean_of_their_pieces(pair):
    model, tok, before, emb, out = pair
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == emb.shape[0] + len(ADDED_TOKENS)
    for t in ADDED_TOKENS:
        row = tok.convert_tokens_to_ids(t)
        torch.testing.assert_close(model.get_input_embeddings().weight[row], emb[before[t]].mean(0))
        torch.testing.assert_close(model.get_output_embeddings().weight[row], out[before[t]].mean(0))
    torch.testing.assert_close(model.get_input_embeddings().weight[: emb.shape[0]], emb)  # old rows untouched
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(END)


def test_install_is_idempotent(pair):
    model, tok, *_ = pair
    n = len(tok)
    model2, tok2 = install_nano2(model, tok, tool_tokens=True)
    assert len(tok2) == n and model2.get_input_embeddings().weight.shape[0] == n


texts = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="<>/\r\x00"), min_size=1, max_size=30
)
texts = texts.map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None)
@given(user=texts, reasoning=texts, answer=texts, on=st.booleans())
def test_assistant_mask_covers_exactly_assistant_tokens(pair, user, reasoning, answer, on):
    _, tok, *_ = pair
    msgs = [
        {"role": "system", "content": "/think" if on else "/no_think"},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer, "reasoning_content": reasoning if on else None},
    ]
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    masked = tok.decode([i for i, m in zip(ids, mask) if m])
    assert masked == (f"{reasoning}\n</think>\n" if on else "") + answer + END
    prompt = render(tok, msgs[:2], add_generation_prompt=True)
    assert render(tok, msgs).startswith(prompt)


def test_unknown_markers_name_the_field():
    tok = chatml_tokenizer(special=("[BOS]", "[EOS]", "[PAD]"))
    with pytest.raises(PosttrainError, match=r"^model\.turn_markers: .*no known turn markers"):
        install_nano2(None, tok)
    markers = {
        "system": "[BOS]system\n",
        "user": "[BOS]user\n",
        "assistant": "[BOS]assistant\n",
        "end": "[EOS]",
    }
    _, tok = install_nano2(None, tok, turn_markers=markers)
    assert tok.eos_token == "[EOS]"
    with pytest.raises(PosttrainError, match=r"model\.turn_markers\.end: 'two words' is \d+ tokens"):
        install_nano2(None, chatml_tokenizer(), turn_markers={**markers, "end": "two words"})
    with pytest.raises(PosttrainError, match=r"model\.turn_markers: missing \['end'\]"):
        install_nano2(None, chatml_tokenizer(), turn_markers={**markers, "end": ""})


def test_think_as_special_token_is_refused():
    tok = chatml_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<think>"]})
    with pytest.raises(PosttrainError, match=r"model\.chat_template: '<think>' is a special token"):
        install_nano2(None, tok)


def test_server_client_and_budget_work_unchanged_on_chatml(pair, tmp_path):
    """The budgeted client against ``posttrain serve`` equals in-process budgeted generation, and the
    verifiers read the answer after ``</think>``, on a ChatML model with the Nano 2 template."""
    import threading

    from posttrain.inference.budget import MODEL_CARD_CLOSE, generate_budgeted
    from posttrain.inference.client import ThinkingBudgetClient
    from posttrain.inference.server import make_server
    from posttrain.models import load_model, load_tokenizer, save_checkpoint
    from posttrain.rewards import score

    model, tok, *_ = pair
    ckpt = save_checkpoint(model, tok, tmp_path / "chatml")
    model, tok = load_model(str(ckpt)), load_tokenizer(str(ckpt))
    server = make_server(str(ckpt), "127.0.0.1", 0, max_context=64)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://{}:{}".format(*server.server_address[:2])
        msgs = [{"role": "user", "content": "What is 12 + 30?"}]
        got = ThinkingBudgetClient(url, "chatml", tokenizer=tok).chat_completion(
            msgs, reasoning_budget=3, max_tokens=8
        )
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert text.endswith(f"{AST}<think>\n")
        (ref,) = generate_budgeted(
            model, tok, [text], budget=3, max_tokens=8, grace_tokens=0, close=MODEL_CARD_CLOSE
        )
        assert got["text"] == ref.text and got["text"].count("</think>") == 1 and ref.thinking_tokens <= 3
    finally:
        server.shutdown()
        server.server_close()
    assert score("math", {"answer": "42"}, "12 + 30 = 42\n</think>\nThe answer is \\boxed{42}", "on") == 1.0
    assert score("math", {"answer": "42"}, "the answer is 42, still thinking", "on") == 0.0


def test_initial_checkpoint_from_any_hf_dir(tmp_path):
    """model=hf model.path=<dir> model.chat_template=nano2: the same loaders as a hub id, then the
    conventions installed and saved; native keeps a reference to the checkpoint as is."""
    from posttrain.config.schema import ModelConfig
    from posttrain.models import initial_checkpoint, load_tokenizer, save_checkpoint

    tok = chatml_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    src = save_checkpoint(LlamaForCausalLM(cfg), tok, tmp_path / "src")
    ref, metrics = initial_checkpoint(
        ModelConfig(kind="hf", path=str(src), chat_template="native"), tmp_path / "a"
    )
    assert ref == str(src) and not (tmp_path / "a").exists()
    ref, metrics = initial_checkpoint(
        ModelConfig(kind="hf", path=str(src), chat_template="nano2"), tmp_path / "b"
    )
    assert metrics["added_tokens"] == 2 and metrics["source"] == str(src)
    out = load_tokenizer(ref)
    assert out.eos_token == END and out.apply_chat_template(
        [{"role": "user", "content": "hi /no_think"}], tokenize=False, add_generation_prompt=True
    ).endswith(f"{AST}<think></think>")
    with pytest.raises(PosttrainError, match=r"^model\.chat_template: 'nano3'"):
        initial_checkpoint(ModelConfig(kind="hf", path=str(src), chat_template="nano3"), tmp_path / "c")
    with pytest.raises(PosttrainError, match=r"^model\.kind: unknown kind 'onnx'"):
        initial_checkpoint(ModelConfig(kind="onnx"), tmp_path / "d")
