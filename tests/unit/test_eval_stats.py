"""Properties of the eval intervals: Wilson, percentile bootstrap, mean_ci dispatch and paired deltas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posttrain.evals.stats import bootstrap_ci, mean_ci, paired_diff, wilson

FAST = settings(max_examples=60, deadline=None)
counts = st.integers(min_value=0, max_value=200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
scores = st.lists(unit, min_size=1, max_size=40)
binary = st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60)


def test_wilson_textbook_value():
    # p = 0.8, z^2/n = 0.38416: centre 0.99208 / 1.38416 = 0.71674, half 0.31362 / 1.38416 = 0.22658
    lo, hi = wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert wilson(0, 10) == (0.0, pytest.approx(1.96**2 / (10 + 1.96**2)))  # k=0: hi = z^2/(n+z^2)
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson(11, 10)


@FAST
@given(counts)
def test_wilson_contains_p_within_unit_interval(kn):
    k, n = kn
    lo, hi = wilson(k, n)
    p = k / n if n else 0.5
    assert 0.0 <= lo <= p <= hi <= 1.0


@FAST
@given(counts, st.integers(min_value=2, max_value=10))
def test_wilson_narrows_as_n_grows(kn, m):
    k, n = kn
    if n == 0:
        return
    lo1, hi1 = wilson(k, n)
    lo2, hi2 = wilson(k * m, n * m)  # same proportion, m times the trials
    assert hi2 - lo2 < hi1 - lo1


@FAST
@given(scores)
def test_bootstrap_contains_mean_within_unit_interval(values):
    lo, hi = bootstrap_ci(values, n_boot=300)
    mean = math.fsum(values) / len(values)
    assert 0.0 <= lo <= mean + 1e-12 and mean - 1e-12 <= hi <= 1.0


@FAST
@given(st.lists(unit, min_size=2, max_size=12))
def test_bootstrap_narrows_as_n_grows(values):
    lo1, hi1 = bootstrap_ci(values, n_boot=1000)
    lo2, hi2 = bootstrap_ci(values * 9, n_boot=1000)  # same distribution, 9x the items
    assert hi2 - lo2 <= hi1 - lo1 + 1e-9


def test_bootstrap_deterministic_and_seeded():
    values = [0.1, 0.5, 0.25, 1.0, 0.0, 0.75, 0.3]
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    assert bootstrap_ci([]) == (0.0, 1.0) and bootstrap_ci([0.4, 0.4]) == (0.4, 0.4)


@FAST
@given(binary)
def test_mean_ci_is_wilson_on_binary(values):
    assert mean_ci(values) == wilson(int(sum(values)), len(values))


@FAST
@given(scores)
def test_mean_ci_contains_mean(values):
    lo, hi = mean_ci(values)
    mean = math.fsum(values) / len(values)
    assert 0.0 <= lo <= mean + 1e-12 and mean - 1e-12 <= hi <= 1.0


def test_mean_ci_bootstraps_fractions():
    values = [0.5, 1.0, 0.0, 1 / 3]
    assert mean_ci(values) == bootstrap_ci(values) and mean_ci([]) == (0.0, 1.0)


@FAST
@given(scores)
def test_paired_diff_of_identical_lists_is_zero(values):
    assert paired_diff(values, list(values)) == (0.0, 0.0, 0.0)


pairs = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(st.lists(unit, min_size=n, max_size=n), st.lists(unit, min_size=n, max_size=n))
)


@FAST
@given(pairs)
def test_paired_diff_antisymmetric_and_contains_delta(ab):
    a, b = ab
    d, lo, hi = paired_diff(a, b, n_boot=400)
    d2, lo2, hi2 = paired_diff(b, a, n_boot=400)
    assert d2 == pytest.approx(-d, abs=1e-12)
    assert (lo2, hi2) == (pytest.approx(-hi, abs=1e-12), pytest.approx(-lo, abs=1e-12))
    assert -1.0 <= lo <= d + 1e-12 and d - 1e-12 <= hi <= 1.0


@FAST
@given(pairs, st.integers(0, 2**31 - 1))
def test_paired_diff_deterministic_under_seed(ab, seed):
    a, b = ab
    assert paired_diff(a, b, n_boot=200, seed=seed) == paired_diff(a, b, n_boot=200, seed=seed)


def test_paired_diff_detects_a_real_effect_and_not_noise():
    a = [1.0] * 40 + [0.0] * 10  # model right on 40 of 50
    b = [1.0] * 20 + [0.0] * 30  # baseline right on 20 of the same 50, never where the model is wrong
    d, lo, hi = paired_diff(a, b)
    assert d == pytest.approx(0.4) and lo > 0
    noise = [1.0, 0.0] * 10
    d, lo, hi = paired_diff(noise, noise[1:] + noise[:1])  # same accuracy, different items right
    assert d == 0.0 and lo < 0 < hi


def test_paired_diff_edge_cases():
    assert paired_diff([], []) == (0.0, -1.0, 1.0)
    with pytest.raises(ValueError):
        paired_diff([1.0], [1.0, 0.0])
