from posttrain.stages.grpo import reward_trend


def test_reward_trend_first_and_last_thirds_per_reward():
    logs = [
        {"reward": r, "rewards/correctness_reward/mean": r / 10, "frac_reward_zero_std": r / 8, "loss": 1.0}
        for r in (1, 2, 3, 4, 5, 6)
    ]
    out = reward_trend(logs)
    assert out["frac_reward_zero_std_first"] == 1.5 / 8 and out["frac_reward_zero_std_last"] == 5.5 / 8
    assert out["reward_first"] == 1.5 and out["reward_last"] == 5.5
    assert (
        abs(out["correctness_reward_first"] - 0.15) < 1e-12
        and abs(out["correctness_reward_last"] - 0.55) < 1e-12
    )
    assert reward_trend([{"loss": 1.0}]) == {}
