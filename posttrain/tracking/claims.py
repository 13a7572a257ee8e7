"""What a finished pipeline run shows, checked from its manifests: the demo's five claims.

Each check reads only ``<run_dir>/<NN>_<stage>/manifest.json`` metrics (the eval stage's summary keys
and its baselines' ``<name>.<key>`` copies; the GRPO stage's ``reward_first`` / ``reward_last``):

1. **SFT beats the untrained model on format**, ON and OFF: the ``sft`` column of the eval (or the final
   model when SFT is not a baseline) has a higher format share than ``init`` in both modes.
2. **``/no_think`` uses far fewer tokens than ``/think``**: generated tokens OFF <= ``FEWER`` x ON.
3. **Answers stay well-formed when thinking is cut short**: with the trace force-closed after
   ``budget_tokens`` tokens, the format share is within ``KEEP`` of the uncut ``/think`` share.
   (The counterfactual, the same pipeline without truncated-thinking samples, is ``posttrain ablate``.)
4. **GRPO's mean reward over its last steps exceeds its first steps** (first vs last third of logs).
5. **DPO and GRPO do not lower held-out accuracy below SFT's beyond noise**: the eval's paired
   difference final - SFT over every (prompt, mode) has a 95 % interval whose upper end is >= 0.

A missing stage or metric makes its check ``None`` (not run), never a pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.pipeline.manifest import Manifest
from posttrain.pipeline.rundir import RunDir

FEWER = 0.6  # "far fewer": at least 40 % fewer generated tokens
KEEP = 0.1  # "keeps answers well-formed": at most 10 points below the uncut format share


def _last(ms: list[Manifest], kind: str) -> dict[str, Any] | None:
    found = [m for m in ms if m.kind == kind]
    return (found[-1].metrics or {}) if found else None


def demo_checks(run_dir: str | Path) -> list[dict[str, Any]]:
    """``[{claim, evidence, passed}]`` for the five claims; ``passed`` is None when not measurable."""
    ms = RunDir(run_dir).done()
    ev, grpo = _last(ms, "eval"), _last(ms, "grpo")
    rows = []

    def add(claim: str, evidence: str, passed: bool | None) -> None:
        rows.append({"claim": claim, "evidence": evidence, "passed": passed})

    def get(*keys: str) -> list[float] | None:
        vals = [ev.get(k) if ev else None for k in keys]
        return None if any(not isinstance(v, (int, float)) for v in vals) else [float(v) for v in vals]

    who = "sft" if ev and "sft.format_on" in ev else "model"
    pre = "" if who == "model" else "sft."
    f = get(f"{pre}format_on", "init.format_on", f"{pre}format_off", "init.format_off")
    add(
        "SFT beats the untrained model on format (ON and OFF)",
        f"{who} vs init: ON {f[0]:.2f} vs {f[1]:.2f}, OFF {f[2]:.2f} vs {f[3]:.2f}"
        if f
        else "no eval with init",
        (f[0] > f[1] and f[2] > f[3]) if f else None,
    )
    t = get("tokens_off", "tokens_on")
    add(
        "/no_think uses far fewer tokens than /think",
        f"{t[0]:.1f} vs {t[1]:.1f} generated tokens ({1 - t[0] / t[1]:.0%} fewer)" if t else "no eval",
        (t[0] <= FEWER * t[1]) if t else None,
    )
    b = get("format_budget", "format_on")
    add(
        "answers stay well-formed when thinking is cut short",
        f"format {b[0]:.2f} with the trace cut vs {b[1]:.2f} uncut" if b else "no eval",
        (b[0] >= b[1] - KEEP) if b else None,
    )
    r = [grpo.get("reward_first"), grpo.get("reward_last")] if grpo else None
    r = r if r and all(isinstance(x, (int, float)) for x in r) else None
    add(
        "GRPO's mean reward over its last steps exceeds its first steps",
        f"{r[0]:.3f} -> {r[1]:.3f} (first vs last third of steps)" if r else "no grpo stage",
        (r[1] > r[0]) if r else None,
    )
    d, ci = (ev or {}).get("delta_vs_sft.accuracy_all"), (ev or {}).get("delta_vs_sft.accuracy_ci_all")
    ok = isinstance(d, (int, float)) and isinstance(ci, list) and len(ci) == 2
    add(
        "DPO and GRPO do not lower held-out accuracy below SFT beyond noise",
        f"final - sft {d:+.3f}, 95 % CI [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        if ok
        else "no eval with an sft baseline",
        (ci[1] >= 0) if ok else None,
    )
    return rows


def checks_markdown(rows: list[dict[str, Any]]) -> str:
    mark = {True: "yes", False: "**no**", None: "not measured"}
    lines = ["| claim | shown | evidence |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {mark[r['passed']]} | {r['evidence']} |" for r in rows]
    return "\n".join(lines) + "\n"
