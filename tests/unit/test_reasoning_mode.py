from hypothesis import given
from hypothesis import strategies as st

from posttrain.inference.generate import with_reasoning_mode

text = st.text(alphabet=st.sampled_from(list("ab /thinkno_")), max_size=30)


@given(system=st.one_of(st.none(), text), user=text, mode=st.sampled_from(["on", "off"]))
def test_mode_flag_is_last_and_only_flag(tokenizer, system, user, mode):
    prompt = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    msgs = with_reasoning_mode(prompt, mode)
    out = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert out.endswith("<think>\n") if mode == "on" else out.endswith("<think></think>")
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
    assert "/think" not in msgs[-1]["content"] and "/no_think" not in msgs[-1]["content"]
