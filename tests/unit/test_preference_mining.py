"""The on-policy mining loop: resampling only unresolved prompts up to the cap, pairs, counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posttrain import PosttrainError
from posttrain.config.schema import PreferenceStageConfig
from posttrain.stages import preference
from posttrain.stages.base import StageInputs
from posttrain.stages.preference import mine_on_policy

CATS = ("math", "code", "tool_calling")


class Scripted:
    """Prompt i's j-th sample is the text ``"i:j:score"``, its score scripted by ``streams[i][j]``.

    Every call is checked against the contract: only unresolved prompts below the cap are sampled,
    in rounds of ``min(k, cap - drawn)``.
    """

    def __init__(self, streams, *, k, cap, threshold=1.0, gap=0.0):
        self.streams, self.k, self.cap, self.threshold, self.gap = streams, k, cap, threshold, gap
        self.drawn = [[] for _ in streams]
        self.calls: list[tuple[list[int], int]] = []

    def resolved(self, i) -> bool:
        sc = [self.score(None, t) for t in self.drawn[i]]
        good, bad = [s for s in sc if s >= self.threshold], [s for s in sc if s < self.threshold]
        return bool(good and bad) and max(good) - min(bad) >= self.gap

    def __call__(self, indices, n):
        assert indices and len(set(indices)) == len(indices)
        for i in indices:
            assert not self.resolved(i), f"prompt {i} resampled after it was resolved"
            assert n == min(self.k, self.cap - len(self.drawn[i])) > 0, (i, n, len(self.drawn[i]))
        self.calls.append((list(indices), n))
        out = []
        for i in indices:
            j0 = len(self.drawn[i])
            texts = [f"{i}:{j}:{self.streams[i][j % len(self.streams[i])]}" for j in range(j0, j0 + n)]
            self.drawn[i] += texts
            out.append(texts)
        return out

    @staticmethod
    def score(row, text) -> float:
        return float(text.rsplit(":", 1)[1])


def rows_for(n):
    return [
        {"uuid": f"u{i}", "category": CATS[i % len(CATS)], "reasoning": "off", "prompt": f"q{i}"}
        for i in range(n)
    ]


def mine(streams, *, k=4, cap=12, threshold=1.0, per_prompt=1, gap=0.0, references=None):
    sampler = Scripted(streams, k=k, cap=cap, threshold=threshold, gap=gap)
    pairs, counts, records = mine_on_policy(
        rows_for(len(streams)),
        sampler,
        Scripted.score,
        k=k,
        cap=cap,
        threshold=threshold,
        per_prompt=per_prompt,
        seed=0,
        references=references,
        min_gap=gap,
    )
    return pairs, counts, records, sampler


def test_late_pass_gives_on_policy_pair_within_cap():
    # prompt 0: round 0 all fail, round 1 has a pass; prompt 1 resolved in round 0
    pairs, counts, records, s = mine([[0, 0, 0, 0, 0, 1, 0, 0], [1, 0]], k=4, cap=12)
    assert s.calls == [([0, 1], 4), ([0], 4)]
    assert [len(r["samples"]) for r in records] == [8, 4] and records[0]["rounds"] == [0] * 4 + [1] * 4
    p0 = [p for p in pairs if p["prompt"] == "q0"]
    assert len(p0) == 1 and p0[0]["chosen"] == "0:5:1" and p0[0]["source"] == "on_policy"
    assert p0[0]["rejected"] in s.drawn[0] and p0[0]["rejected"].endswith(":0")
    assert counts["prompts_on_policy"] == 2 and counts["prompts_resampled"] == 1
    assert counts["rounds"] == 2 and counts["extra_samples"] == 4 and counts["samples"] == 12
    assert counts["on_policy_fraction"] == 1.0 and counts["pass_rate_first_round"] == 2 / 8


def test_never_passing_prompt_stops_at_cap_and_is_counted():
    pairs, counts, records, s = mine([[0], [1, 0]], k=4, cap=10)
    assert [n for _, n in s.calls] == [4, 4, 2]  # the last round only tops up to the cap
    assert len(records[0]["samples"]) == 10 and records[0]["outcome"] == "all_fail"
    assert counts["prompts_all_fail"] == 1 and counts["pairs_reference"] == 0
    assert [p["prompt"] for p in pairs] == ["q1"]


def test_reference_chosen_only_after_the_cap():
    refs = {"u0": "ref:1", "u1": "ref:1", "u2": "ref:0.5"}
    pairs, counts, records, s = mine([[0], [1, 0], [0]], k=4, cap=8, references=refs)
    assert len(s.drawn[0]) == 8 and len(s.drawn[2]) == 8  # the reference does not stop resampling
    by_prompt = {p["prompt"]: p for p in pairs}
    assert by_prompt["q0"]["chosen"] == "ref:1" and by_prompt["q0"]["source"] == "reference"
    assert by_prompt["q1"]["source"] == "on_policy"  # resolved prompts never use the reference
    assert "q2" not in by_prompt  # its reference fails its own verifier
    assert counts["pairs_reference"] == 1 and counts["references_failing"] == 1
    assert counts["prompts_all_fail"] == 2 and counts["on_policy_fraction"] == 0.5


def test_all_pass_prompts_are_counted_not_paired():
    pairs, counts, _, s = mine([[1], [1, 1, 1, 0]], k=2, cap=6)
    assert counts["prompts_all_pass"] == 1 and counts["prompts_on_policy"] == 1
    assert len(s.drawn[0]) == 6 and len(s.drawn[1]) == 4 and counts["pairs"] == 1


def test_min_score_gap_keeps_resampling_and_counts_no_gap():
    # prompt 0 passes (0.5) and fails (0.3), but never 0.8 apart; prompt 1 is resolved at once
    pairs, counts, records, _ = mine([[0.5, 0.3], [1.0, 0.0]], k=2, cap=4, threshold=0.5, gap=0.8)
    assert records[0]["outcome"] == "no_gap" and len(records[0]["samples"]) == 4
    assert counts["prompts_no_gap"] == 1 and counts["pairs"] == 1 and counts["prompts_on_policy"] == 1
    pairs, counts, _, _ = mine([[0.5, 0.3, 1.0, 0.1]], k=2, cap=4, threshold=0.5, gap=0.8)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("0:2:1.0", "0:3:0.1")]


def test_cap_below_k_is_refused(tmp_path):
    with pytest.raises(ValueError, match="k <= cap"):
        mine([[0]], k=4, cap=3)
    cfg = PreferenceStageConfig(num_samples=4, max_samples=3)
    inputs = StageInputs(
        name="pref", stage_dir=tmp_path, checkpoint=str(tmp_path / "none"), data_dir=tmp_path
    )
    with pytest.raises(PosttrainError, match=r"stage\.pref\.max_samples"):
        preference.run(cfg, inputs)  # before any model or data is loaded


def test_schema_defaults_are_on_policy():
    cfg = PreferenceStageConfig()
    assert cfg.reference_chosen is False and cfg.max_samples >= cfg.num_samples and cfg.min_score_gap == 0


SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0])


@settings(max_examples=150, deadline=None)
@given(
    streams=st.lists(st.lists(SCORES, min_size=1, max_size=12), min_size=1, max_size=8),
    k=st.integers(1, 4),
    extra=st.integers(0, 9),
    threshold=st.sampled_from([0.5, 1.0]),
    gap=st.sampled_from([0.0, 0.5, 0.75]),
    per_prompt=st.integers(1, 3),
    with_refs=st.booleans(),
)
def test_mining_properties(streams, k, extra, threshold, gap, per_prompt, with_refs):
    cap = k + extra
    refs = {f"u{i}": f"ref{i}:{[1.0, 0.0][i % 2]}" for i in range(len(streams))} if with_refs else None
    pairs, counts, records, s = mine(
        streams, k=k, cap=cap, threshold=threshold, per_prompt=per_prompt, gap=gap, references=refs
    )  # the sampler itself asserts: unresolved prompts only, round sizes, never past the cap
    for i, rec in enumerate(records):
        assert rec["samples"] == s.drawn[i] and len(rec["scores"]) == len(rec["rounds"]) == len(s.drawn[i])
        assert len(s.drawn[i]) == cap or s.resolved(i)  # stops only when resolved or at the cap
        assert rec["pairs"] <= (1 if rec["outcome"] == "all_fail" else per_prompt)
        assert (rec["pairs"] > 0) == (rec["outcome"] == "on_policy") or rec["outcome"] == "all_fail"
    for p in pairs:
        i = int(p["prompt"][1:])
        assert p["chosen_score"] >= threshold > p["rejected_score"]
        assert p["chosen_score"] - p["rejected_score"] >= gap and p["rejected"] in s.drawn[i]
        assert p["chosen"] in s.drawn[i] if p["source"] == "on_policy" else p["chosen"] == refs[f"u{i}"]
    n = len(streams)
    assert counts["prompts"] == n == sum(counts[f"prompts_{o}"] for o in preference.OUTCOMES)
    assert (
        counts["pairs"] == len(pairs) == sum(counts[f"pairs_{c}"] for c in {r["category"] for r in records})
    )
    assert counts["pairs"] == counts["pairs_on_policy"] + counts["pairs_reference"]
    assert counts["samples"] == sum(len(d) for d in s.drawn) == sum(len(o) * m for o, m in s.calls)
    assert counts["extra_samples"] == counts["samples"] - n * k and counts["rounds"] == len(s.calls)
    assert counts["samples"] == sum(counts[f"samples_{c}"] for c in CATS if f"samples_{c}" in counts)
    if pairs:
        assert counts["on_policy_fraction"] == counts["pairs_on_policy"] / counts["pairs"]
    if not with_refs:
        assert counts["pairs_reference"] == 0 and all(p["source"] == "on_policy" for p in pairs)
