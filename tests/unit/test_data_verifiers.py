"""Every verifier accepts the reference answer of its own samples and rejects a corrupted one.

Completions are produced exactly as at RL time: the RL view's prompt rendered with the generation
prompt, and the expected completion rendered after it (EOS dropped, as GRPO's decoding does).
"""

from __future__ import annotations

import random

import pytest

from data_recipes.config import RecipeConfig
from data_recipes.domains import DOMAINS, get
from data_recipes.transforms.reasoning import apply_flag, off_copy
from data_recipes.transforms.truncation import truncate_sample
from data_recipes.views import completion, rl_row

rewards = pytest.importorskip("posttrain.rewards")
EOS = "<SPECIAL_12>"


def completion_text(tok, sample: dict, turn: dict) -> str:
    """Text the model must generate after the RL prompt for ``turn`` to be produced."""
    row = rl_row(sample)
    head = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(row["prompt"] + [turn], tokenize=False)
    assert full.startswith(head), "the generation prompt must be a prefix of prompt + completion"
    return full[len(head) :].rstrip("\n").removesuffix(EOS)


N = {"code": 4}  # code is scored in a sandbox subprocess (~0.2 s each); the rest are in-process


def samples_of(domain: str, n: int = 24) -> list[dict]:
    cfg = RecipeConfig(name="verifiers", seed=7)
    out = [apply_flag(s) for s in get(domain).generate(cfg, list(range(N.get(domain, n))))]
    return out + [off_copy(s) for s in out[:3]]


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_reference_accepted_and_corruption_rejected(domain, tokenizer):
    for s in samples_of(domain):
        ref = completion(s)[0]
        good = rewards.score(
            s["category"], rl_row(s)["metadata"], completion_text(tokenizer, s, ref), s["reasoning"]
        )
        assert good == 1.0, (s["uuid"], ref)
        bad_turn = get(domain).corrupt(s, random.Random(0))
        bad = rewards.score(
            s["category"], rl_row(s)["metadata"], completion_text(tokenizer, s, bad_turn), s["reasoning"]
        )
        assert bad < 1.0, (s["uuid"], bad_turn)


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_truncated_reference_still_accepted(domain, tokenizer):
    for s in samples_of(domain, 8)[:8]:
        cut = truncate_sample(s, 6, tokenizer)
        if cut is None:
            continue
        text = completion_text(tokenizer, cut, completion(cut)[0])
        assert rewards.score(cut["category"], rl_row(cut)["metadata"], text, "on") == 1.0


def test_code_corruptions_fail_their_own_tests():
    """Over many tasks (all families), the reference passes its tests and the corruption fails them."""
    from data_recipes.domains import code

    for s in code.generate(RecipeConfig(seed=3), list(range(300))):
        name, tests = s["metadata"]["entry_point"], s["metadata"]["tests"]
        ref = s["messages"][-1]["content"].removeprefix("```python\n").removesuffix("```")
        bad = code.corrupt(s, random.Random(0))["content"].removeprefix("```python\n").removesuffix("```")
        assert not code._fails(ref, name, tests), s["messages"][-1]["content"]
        assert code._fails(bad, name, tests) and "return None" not in bad, bad


def test_safety_covers_both_classes():
    labels = {s["metadata"]["harmful"] for s in samples_of("safety", 40)}
    assert labels == {True, False}


def test_math_answers_pass_reasoning_gym_scorers():
    from data_recipes.domains import math

    tasks = RecipeConfig().math_tasks
    cfg = RecipeConfig(seed=9, math_tasks=tasks)
    seen = set()
    for i, s in enumerate(math.generate(cfg, list(range(24)))):
        task = s["metadata"]["source"].split("/", 1)[1]
        seen.add(task)
        ds = math._dataset(task, cfg.seed, math._options(tasks[task]))
        entry = ds[i]  # sample i is item i of its task
        assert entry["question"].strip() == s["messages"][1]["content"]
        assert ds.score_answer(s["metadata"]["answer"], entry) == 1.0
        assert s["messages"][-1]["content"].endswith(f"\\boxed{{{s['metadata']['answer']}}}")
        trace = s["messages"][-1]["reasoning_content"]
        assert trace and "####" not in trace and "\n" in trace
    assert seen == set(tasks)


def test_gsm_symbolic_trace_is_its_chain_of_thought():
    """gsm_symbolic items take seconds each in reasoning-gym 0.1.25, so the trace is checked on a canned item."""
    from data_recipes.domains.math import trace

    item = {
        "answer": "19",
        "metadata": {"answer_cot": "He had 72*0.25=18.\n\nThen 18+4=22.\nSo 22-3=19.\n#### 19"},
    }
    assert trace("gsm_symbolic", item) == "He had 72*0.25=18.\nThen 18+4=22.\nSo 22-3=19."
    expr = {"answer": "-61", "metadata": {"expression": "( 56 + -33 ) - 84"}}
    assert trace("basic_arithmetic", expr) == "56 + -33 = 23.\n23 - 84 = -61.\nSo the answer is -61."


def test_expression_trace_shows_negation_and_skips_rounded_divisions():
    from data_recipes.domains.math import expression_steps, trace

    assert expression_steps("-( 38 * 44 )") == ["38 * 44 = 1672.", "-(1672) = -1672."]
    assert expression_steps("-8 * -2") == ["-8 * -2 = 16."]  # negative literals are not steps
    rounded = {"answer": "0", "metadata": {"expression": "4 / 43"}}  # reasoning-gym rounds to 0
    assert "4 / 43" not in trace("basic_arithmetic", rounded) and trace("basic_arithmetic", rounded).endswith(
        "0."
    )


def test_code_corrupt_index_equals_the_full_scan():
    """``corrupt`` looks families up by name; it picks what scanning every (family, K) in order picks."""
    from data_recipes.domains import code

    def scan(s: dict) -> dict:
        last, name = s["messages"][-1], s["metadata"]["entry_point"]
        head = last["content"].split("\n")[1]
        args = tuple(a.strip() for a in head[head.index("(") + 1 : head.rindex(")")].split(",") if a.strip())
        for f in range(code._N_V1 + len(code.NEW_FAMILIES)):
            names, _, _, _, body, bug, _ = code._family(f)
            for k in code._wide_ks(f):
                fill = {"k": k, "k1": k + 1}
                if name in [nm.format(k=k) for nm in names]:
                    if code.function_code(name, args, body.format(*args, **fill)) in last["content"]:
                        bad = code.function_code(name, args, bug.format(*args, **fill))
                        if code._fails(bad, name, s["metadata"]["tests"]):
                            return {**last, "content": f"```python\n{bad}```"}
        return {**last, "content": f"```python\n{code.function_code(name, args, 'None')}```"}

    rows = code.generate(RecipeConfig(seed=5), [*range(0, 1134, 7), *range(1134, 21000, 97)])
    assert all(code.corrupt(s, random.Random(0)) == scan(s) for s in rows)


def test_code_corrupt_keeps_off_working_trace_and_breaks_the_code():
    """An ``off_working`` copy puts the trace before the code block; ``corrupt`` keeps that working and
    still returns code that fails its own tests (it used to raise "substring not found")."""
    from data_recipes.domains import code

    rows = [
        s
        for s in code.generate(RecipeConfig(seed=3), list(range(60)))
        if s["messages"][-1].get("reasoning_content")
    ]
    assert rows
    for s in rows:
        off = off_copy(s, working=True)
        working, _, block = off["messages"][-1]["content"].rpartition("```python\n")
        assert working.strip()
        got = code.corrupt(off, random.Random(0))["content"]
        assert got.startswith(working)
        bad = got[len(working) :].removeprefix("```python\n").removesuffix("```")
        assert code._fails(bad, s["metadata"]["entry_point"], s["metadata"]["tests"]), got
        assert got[len(working) :] == code.corrupt(s, random.Random(0))["content"]
