"""The two-phase NAS's pure logic (``posttrain.compress.nas``): the width grid, memory admission
under a budget, the depth pick and the loss-then-throughput ranking."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from posttrain.compress import nas
from posttrain.compress.memory import Arch, plan_memory
from posttrain.compress.nas import Width

NANO_12B = Arch(
    pattern="M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M-",
    hidden_size=5120, vocab_size=131072, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
    intermediate_size=20480, mamba_num_heads=128, mamba_head_dim=80, n_groups=8, ssm_state_size=128,
)  # fmt: skip
NANO_9B_PATTERN = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-"
A10G = 19.657


def test_the_grid_is_every_combination_and_empty_axes_are_kept():
    grid = nas.width_grid(
        {"hidden_size": [4480, 4800], "intermediate_size": [15680, 17920], "mamba_num_heads": []}
    )
    assert len(grid) == 4 and all(w.mamba_num_heads is None for w in grid)
    assert {w.name() for w in grid} == {"h4480_f15680", "h4480_f17920", "h4800_f15680", "h4800_f17920"}
    assert nas.width_grid({}) == [Width()] and Width().name() == "full"


def test_nano2s_winner_fits_the_a10g_at_128k_and_the_12b_widths_do_not():
    widths = [Width(4480, 15680, 128), Width(5120, 20480, 128)]
    kept, rejected = nas.admit(
        NANO_12B, NANO_9B_PATTERN, widths, budget_gib=A10G, max_candidates=3, context=131072, batch=1
    )
    assert [w for w, _ in kept] == [Width(4480, 15680, 128)] and kept[0][1].params == 8_888_227_328
    assert [w for w, _ in rejected] == [Width(5120, 20480, 128)] and not rejected[0][1].fits


sizes = st.lists(st.sampled_from([2048, 3072, 4096, 4480, 5120]), min_size=1, max_size=3, unique=True)


@given(sizes, st.lists(st.sampled_from([8192, 12288, 15680, 20480]), min_size=1, max_size=3, unique=True),
       st.floats(8, 30), st.integers(1, 5))  # fmt: skip
def test_admission_keeps_only_fitting_candidates_that_use_the_most_memory(hs, fs, budget, k):
    widths = nas.width_grid({"hidden_size": hs, "intermediate_size": fs})
    kept, rejected = nas.admit(
        NANO_12B, NANO_9B_PATTERN, widths, budget_gib=budget, max_candidates=k, context=131072, batch=1
    )
    assert len(kept) + len(rejected) == len(widths) and len(kept) <= k
    assert all(p.fits and p.total_gib <= budget for _, p in kept)
    totals = [p.total_gib for _, p in kept]
    assert totals == sorted(totals, reverse=True)
    fitting_left = [p.total_gib for _, p in rejected if p.fits]
    assert not fitting_left or (len(kept) == k and min(totals) >= max(fitting_left))
    for w, p in kept:  # the plan is the planner's on the candidate's architecture
        assert p == plan_memory(
            nas.candidate_arch(NANO_12B, NANO_9B_PATTERN, w), budget_gib=budget, context=131072, batch=1
        )


def test_the_depth_pick_is_the_lowest_loss_deeper_on_a_tie():
    rows = [{"num_layers": 52, "final_eval_loss": 2.0}, {"num_layers": 56, "final_eval_loss": 1.5},
            {"num_layers": 54, "final_eval_loss": 1.5}]  # fmt: skip
    assert nas.pick_depth(rows)["num_layers"] == 56


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(1, 1000)), min_size=1, max_size=8), st.floats(0, 0.5))
def test_ranking_puts_ties_with_the_best_first_by_throughput_then_the_rest_by_loss(pairs, tol):
    rows = [
        {"name": str(i), "final_eval_loss": loss, "tokens_per_s": tps} for i, (loss, tps) in enumerate(pairs)
    ]
    out = nas.rank(rows, tol)
    best = min(loss for loss, _ in pairs)
    assert [r["rank"] for r in out] == list(range(1, len(out) + 1))
    tied = [r for r in out if r["tied_with_best"]]
    assert tied == out[: len(tied)] and all(r["final_eval_loss"] <= best + tol for r in tied)
    assert [r["tokens_per_s"] for r in tied] == sorted((r["tokens_per_s"] for r in tied), reverse=True)
    rest = [r["final_eval_loss"] for r in out[len(tied) :]]
    assert rest == sorted(rest) and all(x > best + tol for x in rest)
    assert math.isclose(out[0]["final_eval_loss"], best, abs_tol=tol)


def test_the_tables_name_every_candidate_and_what_the_budget_ruled_out():
    row = {"name": "h112", "params": 10, "total_gib": 0.1, "pruned_eval_loss": 3.0, "final_eval_loss": 2.0,
           "tokens_per_s": 50.0, "speedup": 1.2, "tied_with_best": True, "rank": 1}  # fmt: skip
    report = {
        "pipeline": "p", "teacher": {"params": 20, "eval_loss": 1.0}, "distill_steps": 2, "depth": 7,
        "memory": {"context": 1024, "batch": 1, "budget_gib": 0.2},
        "phase1": [{"num_layers": 7, "pattern": "M-*", "params": 15, "pruned_eval_loss": 3.5,
                    "final_eval_loss": 2.1, "final_eval_kl": 0.4, "picked": True}],
        "phase2": [row], "rejected": [{"name": "h128", "total_gib": 0.3, "fits": False}],
    }  # fmt: skip
    md = nas.to_markdown(report)
    assert "| 7 | M-* | 15 | 3.5 | 2.1 | 0.4 | yes |" in md
    assert "| 1 | h112 | 10 | 0.1 | 3 | 2 | 50 | 1.2 | yes |" in md and "| h128 | 0.3 | no |" in md
