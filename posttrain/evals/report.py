"""Per-item eval scores -> metrics with confidence intervals, paired deltas and markdown.

An *item* is one (prompt, mode) scored for one target (the model or a baseline)::

    {"target", "uuid", "category", "mode", "score", "format", "tokens", "think_tokens"}
    (+ "harmful", "refusal" on safety prompts)

``target_metrics`` averages a target's items per slice. Slices are ``<category>/<mode>``,
``all/<mode>`` and ``all/all`` (every prompt in the ``on`` and ``off`` modes pooled; the ``budget``
mode is a forced variant of ``on`` and stays out of it). For a slice with ``n`` items the metric is the
plain mean and ``<metric>_ci`` its 95 % interval from :func:`posttrain.evals.stats.mean_ci` (Wilson when
every score is 0/1, else the percentile bootstrap of the mean).

``strict`` is accuracy that counts only well-formed, finished answers (``score * format``): a
``/no_think`` answer that reasons anyway and closes ``</think>`` again scores on ``accuracy`` (the
verifier reads the text after the last ``</think>``) but not on ``strict``. The gap between the two is
how much of an accuracy change breaks the mode contract.

``deltas`` compares the model with each baseline on the *same* items, matched by ``(uuid, mode)``:
``delta = mean(model - baseline)`` of ``accuracy`` (or of ``strict``) with the paired bootstrap interval of
:func:`posttrain.evals.stats.paired_diff`. The markdown marks a delta whose interval excludes 0 when it
rests on at least ``MIN_N`` pairs: with a handful of pairs that all moved the same way every resample
gives the same mean, so the percentile interval collapses to a point (2 of 2 prompts improved would
"exclude 0"; an exact sign test needs 6 of 6 for p < 0.05).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from posttrain.evals.stats import mean_ci, paired_diff

MODES = ("on", "off", "budget")
POOLED = ("on", "off")  # the modes pooled into all/all
CI_METRICS = ("accuracy", "strict", "format", "refusal_rate", "over_refusal")  # shares in [0, 1]
MIN_N = 10  # fewest matched pairs for the markdown to mark a delta as excluding 0
SUMMARY = ("format", "accuracy", "strict", "think_tokens", "tokens")  # <metric>_<mode> summary keys


def value(item: dict[str, Any], metric: str = "accuracy") -> float:
    """An item's ``accuracy`` (its verifier score) or ``strict`` score (``score * format``)."""
    if metric == "accuracy":
        return float(item["score"])
    if metric == "strict":
        return float(item["score"]) * float(item["format"])
    raise ValueError(f"metric must be accuracy or strict, got {metric!r}")


def slices(item: dict[str, Any]) -> list[str]:
    """The slices an item counts in: its category/mode, all/mode, and for the pooled modes also
    category/all and all/all (so a domain's effect is measured on all its prompts at once)."""
    out = [f"{item['category']}/{item['mode']}", f"all/{item['mode']}"]
    return out + ([f"{item['category']}/all", "all/all"] if item["mode"] in POOLED else [])


def _ci(values: list[float]) -> list[float]:
    return [round(x, 6) for x in mean_ci(values)]


def target_metrics(items: Iterable[dict[str, Any]], modes: Iterable[str] = MODES) -> dict[str, Any]:
    """One target's metrics: ``<slice>/<metric>`` (+ ``_ci``, ``/n``) sorted, then the summary keys
    ``n_prompts``, ``accuracy_all`` and ``strict_all`` (+ ``_ci_all``, the all/all slice) and ``<metric>_<mode>`` /
    ``<metric>_ci_<mode>`` for the modes evaluated."""
    vals: dict[str, list[float]] = defaultdict(list)
    prompts = set()
    for it in items:
        prompts.add(it["uuid"])
        for sl in slices(it):
            vals[f"{sl}/n"].append(1.0)
            vals[f"{sl}/accuracy"].append(value(it))
            vals[f"{sl}/strict"].append(value(it, "strict"))
            if sl.endswith("/all"):  # the pooled slices carry accuracy and strict only
                continue
            vals[f"{sl}/format"].append(float(it["format"]))
            vals[f"{sl}/tokens"].append(float(it["tokens"]))
            vals[f"{sl}/think_tokens"].append(float(it["think_tokens"]))
        if "refusal" in it:
            key = "refusal_rate" if it.get("harmful") else "over_refusal"
            vals[f"{it['category']}/{it['mode']}/{key}"].append(float(it["refusal"]))
    out: dict[str, Any] = {}
    for key in sorted(vals):
        v = vals[key]
        if key.endswith("/n"):
            out[key] = len(v)
            continue
        out[key] = sum(v) / len(v)
        if key.rsplit("/", 1)[1] in CI_METRICS:
            out[f"{key}_ci"] = _ci(v)
    out["n_prompts"] = len(prompts)
    for m in ("accuracy", "strict"):
        if f"all/all/{m}" in out:
            out[f"{m}_all"], out[f"{m}_ci_all"] = out[f"all/all/{m}"], out[f"all/all/{m}_ci"]
    for mode in modes:
        for m in SUMMARY:
            out[f"{m}_{mode}"] = out.get(f"all/{mode}/{m}")
            if m in CI_METRICS:
                out[f"{m}_ci_{mode}"] = out.get(f"all/{mode}/{m}_ci")
    return out


def deltas(
    items: dict[str, list[dict[str, Any]]], model: str = "model", metric: str = "accuracy"
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{baseline: {slice: {delta, ci: [lo, hi], n}}}``: model minus baseline ``metric`` (accuracy or
    strict) on matched items."""
    value({"score": 0, "format": 0}, metric)  # a bad metric fails before any pairing
    mine = {(it["uuid"], it["mode"]): it for it in items.get(model, [])}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, theirs in items.items():
        if name == model:
            continue
        pairs: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for it in theirs:
            m = mine.get((it["uuid"], it["mode"]))
            if m is None:
                continue
            for sl in slices(m):
                pairs[sl][0].append(value(m, metric))
                pairs[sl][1].append(value(it, metric))
        res = {}
        for sl in sorted(pairs, key=_slice_order):
            a, b = pairs[sl]
            d, lo, hi = paired_diff(a, b)
            res[sl] = {"delta": round(d, 6), "ci": [round(lo, 6), round(hi, 6)], "n": len(a)}
        out[name] = res
    return out


def step_deltas(
    items: dict[str, list[dict[str, Any]]], order: list[str], metric: str = "accuracy"
) -> dict[str, dict[str, Any]]:
    """``{"<b>-<a>": {slice: {delta, ci, n}}}`` for each consecutive pair ``a, b`` of ``order`` (e.g.
    ``init, sft, dpo, model``): what each stage changed relative to its input, on the same items."""
    return {
        f"{b}-{a}": deltas({b: items[b], a: items[a]}, model=b, metric=metric)[a]
        for a, b in zip(order, order[1:])
        if a in items and b in items
    }


def _slice_order(sl: str) -> tuple:
    cat, mode = sl.split("/")
    return (cat != "all", cat, mode != "all", MODES.index(mode) if mode in MODES else -1)


def ci_key(key: str) -> str:
    """The interval key of a metric: ``<slice>/<m>`` -> ``<slice>/<m>_ci``; ``<m>_<mode>`` -> ``<m>_ci_<mode>``."""
    if "/" in key:
        return f"{key}_ci"
    metric, _, mode = key.rpartition("_")
    return f"{metric}_ci_{mode}"


def _cell(res: dict[str, Any], key: str) -> str:
    v = res.get(key)
    if v is None:
        return ""
    ci = res.get(ci_key(key))
    if ci:
        return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def metric_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """Rows of the metrics table: summary keys first (model order), then slice keys; no ``_ci`` rows."""
    first = next(iter(results.values()))
    keys = [k for k in first if "/" not in k] + sorted({k for r in results.values() for k in r if "/" in k})
    keys = list(dict.fromkeys(keys))
    return [k for k in keys if not (k.endswith("_ci") or "_ci_" in k)]


def marked(d: dict[str, Any]) -> bool:
    """A delta the markdown marks: its interval excludes 0 and it rests on at least ``MIN_N`` pairs."""
    return d["n"] >= MIN_N and (d["ci"][0] > 0 or d["ci"][1] < 0)


def delta_table(delta: dict[str, dict[str, Any]], heading: str, column: str = "vs {}") -> list[str]:
    """Markdown lines: one row per slice, one column per entry of ``delta`` (``column`` formats its name)."""
    base = list(delta)
    lines = [
        "",
        f"## {heading} (paired bootstrap 95 % CI over the same prompts; **bold** and * = the CI "
        f"excludes 0, with n >= {MIN_N})",
        "",
        "| slice | n | " + " | ".join(column.format(b) for b in base) + " |",
        "|---|---|" + "---|" * len(base),
    ]
    for s in dict.fromkeys(s for b in base for s in delta[b]):
        n = next((delta[b][s]["n"] for b in base if s in delta[b]), "")
        cells = []
        for b in base:
            d = delta[b].get(s)
            txt = "" if d is None else f"{d['delta']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"
            cells.append(f"**{txt}** *" if d is not None and marked(d) else txt)
        lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(
    results: dict[str, dict[str, Any]],
    delta: dict[str, dict[str, Any]] | None = None,
    steps: dict[str, dict[str, Any]] | None = None,
    strict: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The metrics table (``mean [lo, hi]`` where an interval exists), the paired deltas of the model vs
    each baseline, (``steps``, from ``step_deltas``) of each stage vs its input, and (``strict``) the
    model's strict-accuracy deltas vs each baseline."""
    models = list(results)
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for k in metric_rows(results):
        lines.append(f"| {k} | " + " | ".join(_cell(results[m], k) for m in models) + " |")
    if delta:
        lines += delta_table(delta, "Deltas: model − baseline, accuracy")
    if steps:
        lines += delta_table(steps, "What each stage changed: stage − its input, accuracy", "{}")
    if strict:
        lines += delta_table(strict, "Deltas: model − baseline, strict accuracy (correct *and* well-formed)")
    return "\n".join(lines) + "\n"
