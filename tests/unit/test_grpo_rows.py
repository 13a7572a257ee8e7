"""GRPO without update work on zero-advantage rows: which rows stay, and that TRL's own loss gives the
same policy gradient on the kept rows as on the whole batch (up to the token-mean normaliser)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from posttrain.stages.grpo_trainer import informative_rows, select_rows

advantages = st.lists(st.sampled_from([0.0, 0.0, 0.0, -0.5, 0.25, 0.875]), min_size=1, max_size=40)


@given(advantages, st.integers(1, 5), st.integers(1, 4))
def test_informative_rows_keep_every_signal_row_and_fill_to_the_multiple(adv, minimum, multiple):
    a = torch.tensor(adv)
    idx = informative_rows(a, minimum=minimum, multiple=multiple).tolist()
    nonzero = [i for i, x in enumerate(adv) if x != 0]
    assert set(nonzero) <= set(idx)
    assert idx == sorted(set(idx)) and all(0 <= i < len(adv) for i in idx)
    assert len(idx) == len(adv) or (len(idx) % multiple == 0 and len(idx) >= minimum)
    # zero rows are added only as filler: never more than the multiple / minimum needs
    assert len(idx) - len(nonzero) < max(multiple, minimum - len(nonzero) + multiple)


def test_informative_rows_on_token_level_advantages_and_an_all_flat_batch():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.3], [0.0, 0.0], [0.1, 0.1]])
    assert informative_rows(a).tolist() == [1, 3]
    assert informative_rows(torch.zeros(8), minimum=1, multiple=2).tolist() == [0, 1]


def test_select_rows_slices_per_row_entries_only():
    batch = {
        "ids": torch.arange(12).view(4, 3),
        "adv": torch.tensor([0.0, 1.0, 0.0, -1.0]),
        "n": torch.tensor(9),
        "names": ["a", "b", "c", "d"],
        "other": torch.arange(3),
    }
    out = select_rows(batch, torch.tensor([1, 3]), rows=4)
    assert out["ids"].tolist() == [[3, 4, 5], [9, 10, 11]]
    assert out["adv"].tolist() == [1.0, -1.0] and out["names"] == ["b", "d"]
    assert out["n"] is batch["n"] and out["other"] is batch["other"]


def test_trl_loss_on_kept_rows_has_the_full_batch_gradient(tiny, tmp_path):
    """beta = 0, dapo loss: sum-of-token-losses / N. The kept rows' gradient times their token count
    equals the full batch's times its count, so dropping the zero rows changes no direction."""
    from datasets import Dataset
    from trl import GRPOConfig

    from posttrain.stages.grpo_trainer import TimedGRPOTrainer

    model, tok = tiny
    torch.manual_seed(0)
    args = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=0.0, num_generations=2,
        per_device_train_batch_size=2, max_completion_length=6, report_to=[], loss_type="dapo",
    )  # fmt: skip
    trainer = TimedGRPOTrainer(
        model=model,
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
        processing_class=tok,
        drop_zero_advantage=True,
    )
    b, p, c = 6, 4, 5
    g = torch.Generator().manual_seed(1)
    completion_mask = torch.ones(b, c, dtype=torch.long)
    completion_mask[2, 3:] = 0
    batch = {
        "prompt_ids": torch.randint(5, 200, (b, p), generator=g),
        "prompt_mask": torch.ones(b, p, dtype=torch.long),
        "completion_ids": torch.randint(5, 200, (b, c), generator=g),
        "completion_mask": completion_mask,
        "advantages": torch.tensor([0.0, 0.5, -0.5, 0.0, 0.0, 0.25]),
    }

    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train; one step here

    def grad(rows: dict) -> tuple[torch.Tensor, float]:
        n = rows["completion_mask"].sum()
        model.zero_grad()
        trainer._compute_loss(model, {**rows, "num_items_in_batch": n}).backward()
        return torch.cat([q.grad.flatten() for q in model.parameters() if q.grad is not None]), float(n)

    full, n_full = grad(batch)
    kept, n_kept = grad(select_rows(batch, informative_rows(batch["advantages"]), rows=b))
    assert n_kept < n_full
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731 (fp32 sums in another order)
    assert full.norm() > 0 and rel(kept * n_kept, full * n_full) < 1e-5
    # and it can fail: leaving out a row that carries an advantage changes the direction
    fewer, n_fewer = grad(select_rows(batch, torch.tensor([1, 5]), rows=b))
    assert rel(fewer * n_fewer, full * n_full) > 1e-2
