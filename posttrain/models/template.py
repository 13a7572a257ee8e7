"""The Nano 2 reasoning conventions on any tokenizer (``model.chat_template=nano2``).

One Jinja template (``chat_template.jinja``) holds the conventions: ``/think`` and ``/no_think``
(last flag wins, flags stripped), the ``<think>\\n`` / ``<think></think>`` assistant openers, tool
markers and ``{% generation %}`` tags for assistant-only loss. Only the turn markers differ between
tokenizers, so the template carries placeholders that :func:`render_template` fills with the
tokenizer's own markers: Nano 2's ``<SPECIAL_1x>`` for the built-in tokenizer, ChatML's
``<|im_start|>role\\n ... <|im_end|>`` for SmolLM2 / Qwen, Llama 3's header ids.

:func:`install_nano2` puts the conventions on a (model, tokenizer) pair:

* ``<think>`` and ``</think>`` become *added non-special* tokens (TRL's GRPO decodes with
  ``skip_special_tokens=True`` and would strip special ones silently); the tool markers too with
  ``tool_tokens=True``. By default they stay text in the tokenizer's own BPE pieces: measured on
  SmolLM2 after 30 SFT steps, a new ``<TOOLCALL>`` row was never emitted (the model wrote its
  pieces' neighbours, ``OLEDCELL[...]``, and scored 0 on tool calling), while the text form is
  copied from the prompt's tool list like any other string;
* the embedding grows by the new tokens; each new row (input and, if untied, output) is the mean of
  the rows of the sub-tokens the text split into before it was added (``<think>`` -> ``<``,
  ``think``, ``>``), so a new token starts near what the model already reads there rather than at a
  random point (the HF default samples around the mean of all rows);
* the end-of-turn marker becomes EOS and a pad token distinct from EOS is chosen when one exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from posttrain import PosttrainError
from posttrain.reasoning import THINK_CLOSE, THINK_OPEN

TOOL_TOKENS = (
    "<TOOLCALL>",
    "</TOOLCALL>",
    "<AVAILABLE_TOOLS>",
    "</AVAILABLE_TOOLS>",
    "<TOOL_RESPONSE>",
    "</TOOL_RESPONSE>",
)
ADDED_TOKENS = (THINK_OPEN, THINK_CLOSE, *TOOL_TOKENS)
_PLACEHOLDERS = ("@@SYSTEM@@", "@@USER@@", "@@ASSISTANT@@", "@@END@@")


@dataclass(frozen=True)
class TurnMarkers:
    """Text that opens a system / user / assistant turn, and the single token that ends a turn."""

    system: str
    user: str
    assistant: str
    end: str


NANO2 = TurnMarkers("<SPECIAL_10>System\n", "<SPECIAL_11>User\n", "<SPECIAL_11>Assistant\n", "<SPECIAL_12>")
CHATML = TurnMarkers("<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>")
LLAMA3 = TurnMarkers(
    "<|start_header_id|>system<|end_header_id|>\n\n",
    "<|start_header_id|>user<|end_header_id|>\n\n",
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|eot_id|>",
)
# Detection order: the first family whose end marker and opener token are in the vocabulary.
KNOWN = {
    "nano2": (NANO2, "<SPECIAL_11>"),
    "chatml": (CHATML, "<|im_start|>"),
    "llama3": (LLAMA3, "<|start_header_id|>"),
}


def render_template(markers: TurnMarkers = NANO2) -> str:
    """The Nano 2 chat template with ``markers`` as turn markers."""
    text = Path(__file__).with_name("chat_template.jinja").read_text(encoding="utf-8")
    for ph, value in zip(_PLACEHOLDERS, (markers.system, markers.user, markers.assistant, markers.end)):
        text = text.replace(ph, value.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'"))
    return text


def detect_markers(tok, override: dict | None = None, *, what: str = "model") -> TurnMarkers:
    """The tokenizer's own turn markers: ``override`` (all four fields) or a known family."""
    if override:
        missing = [k for k in ("system", "user", "assistant", "end") if not override.get(k)]
        if missing:
            raise PosttrainError(f"{what}.turn_markers: missing {missing}; give system, user, assistant, end")
        markers = TurnMarkers(**{k: str(override[k]) for k in ("system", "user", "assistant", "end")})
    else:
        vocab = tok.get_vocab()
        found = [m for m, opener in KNOWN.values() if m.end in vocab and opener in vocab]
        if not found:
            raise PosttrainError(
                f"{what}.turn_markers: the tokenizer has no known turn markers (Nano 2 <SPECIAL_11>, "
                "ChatML <|im_start|>/<|im_end|>, Llama 3 <|start_header_id|>/<|eot_id|>); set "
                f"{what}.turn_markers={{system: ..., user: ..., assistant: ..., end: ...}}"
            )
        markers = found[0]
    ids = tok.encode(markers.end, add_special_tokens=False)
    if len(ids) != 1:
        raise PosttrainError(
            f"{what}.turn_markers.end: {markers.end!r} is {len(ids)} tokens in this tokenizer; the "
            "end-of-turn marker must be a single token (it becomes EOS)"
        )
    return markers


def check_added_tokens(tok, *, what: str = "model") -> None:
    """Refuse a tokenizer where a think/tool marker exists as a *special* token (it would be stripped)."""
    special = set(tok.all_special_tokens)
    for t in ADDED_TOKENS:
        if t in special:
            raise PosttrainError(
                f"{what}.chat_template: {t!r} is a special token in this tokenizer; Nano 2 needs it as a "
                "normal added token (TRL decodes completions with skip_special_tokens=True and would strip it)"
            )


def _pad_token(tok, end: str) -> str:
    for cand in (tok.pad_token, "<|endoftext|>", "<pad>", tok.unk_token):
        if cand and cand != end and cand in tok.get_vocab():
            return cand
    return end


def install_nano2(
    model, tok, *, turn_markers: dict | None = None, tool_tokens: bool = False, what: str = "model"
):
    """Put the Nano 2 conventions on ``tok`` (and resize ``model``'s embeddings); returns both.

    Idempotent: tokens already present as added tokens are kept with their rows.
    """
    import torch

    markers = detect_markers(tok, turn_markers, what=what)
    check_added_tokens(tok, what=what)
    vocab = tok.get_vocab()
    wanted = ADDED_TOKENS if tool_tokens else (THINK_OPEN, THINK_CLOSE)
    new = [t for t in wanted if t not in vocab]
    pieces = {t: tok.encode(t, add_special_tokens=False) for t in new}
    if new:
        tok.add_tokens(list(new), special_tokens=False)
    tok.chat_template = render_template(markers)
    tok.eos_token = markers.end
    tok.pad_token = _pad_token(tok, markers.end)
    if model is None:
        return None, tok
    old = model.get_input_embeddings().weight.shape[0]
    if len(tok) > old:
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        out = model.get_output_embeddings()
        untied = out is not None and out.weight.data_ptr() != emb.data_ptr()
        for t, ids in pieces.items():
            row = tok.convert_tokens_to_ids(t)
            if row >= old and ids:
                emb[row] = emb[ids].mean(0)
                if untied:
                    out.weight[row] = out.weight[ids].mean(0)
    eos = tok.convert_tokens_to_ids(markers.end)
    model.config.eos_token_id = eos
    model.config.pad_token_id = tok.pad_token_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok
