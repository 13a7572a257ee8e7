from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from posttrain.models.tokenizer import ADDED_TOKENS, build_tokenizer, tokenizer_hash


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200))
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_think_tokens_are_single_and_survive_skip_special(tokenizer):
    text = "<think>\nstep one.\n</think>\n<TOOLCALL>[]</TOOLCALL>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    for t in ADDED_TOKENS[:4]:
        assert tokenizer.convert_tokens_to_ids(t) in ids or t not in text
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    turn = tokenizer.encode(
        "<SPECIAL_11>Assistant\n<think>\nx</think>y<SPECIAL_12>", add_special_tokens=False
    )
    assert tokenizer.decode(turn, skip_special_tokens=True) == "Assistant\n<think>\nx</think>y"


def test_digits_are_split(tokenizer):
    assert len(tokenizer.encode("12345", add_special_tokens=False)) == 5


def test_build_is_deterministic_and_cached(tmp_path, tokenizer):
    a = build_tokenizer(cache_dir=tmp_path)
    assert a.get_vocab() == tokenizer.get_vocab()
    assert len(list(tmp_path.glob("tokenizer-*"))) == 1
    assert tokenizer_hash() == tokenizer_hash() and tokenizer_hash(4000) != tokenizer_hash()
    assert 3000 < len(a) < 6000 and a.eos_token == "<SPECIAL_12>"
