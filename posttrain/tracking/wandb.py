"""One W&B run per pipeline stage, grouped by pipeline run, resumable by id, with checkpoint lineage.

``stage_run`` wraps a stage: it starts (or, given the id stored in the stage manifest, continues) a
W&B run with ``job_type=<stage kind>`` and ``group=<pipeline run name>``, hands back what the HF
Trainer needs (``report_to=["wandb"]``; the Trainer's ``WandbCallback`` logs into the already-active
``wandb.run`` instead of creating one), and on success logs the stage checkpoint as a ``model``
artifact whose name the next stage passes back as ``parent_artifact``. With ``logger.kind != wandb``
it yields a null object and never imports wandb.

Offline mode (the default without ``WANDB_API_KEY``) writes ``<run_dir>/wandb/offline-run-*-<id>``;
every (re)start of a run writes a new such folder with the same id, and ``wandb sync`` uploads the
folders of one id in start order into one run. ``use_artifact`` is refused offline, so the parent
artifact is always recorded in the run config (``lineage.parent_artifact``) as well.
"""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from posttrain import PosttrainError

log = logging.getLogger("posttrain")

REDACTED = "***REDACTED***"
_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password)", re.IGNORECASE)
MODES = ("online", "offline", "disabled")


def redact(config: Any) -> Any:
    """A copy of ``config`` with the values of secret-looking keys (api_key, token, secret,
    password; any case, at any depth, inside lists too) replaced by ``***REDACTED***``."""
    if isinstance(config, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v)
            for k, v in config.items()
        }
    if isinstance(config, (list, tuple)):
        return [redact(v) for v in config]
    return config


def has_credentials() -> bool:
    """``WANDB_API_KEY`` is set, or the netrc file has an entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(logger_cfg: Any) -> str:
    """``logger.mode`` if set, else ``WANDB_MODE`` if set, else online with ``WANDB_API_KEY`` and
    offline without. Online without credentials fails at once with one line (never a login prompt)."""
    mode = getattr(logger_cfg, "mode", None) or os.environ.get("WANDB_MODE")
    mode = mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    if mode not in MODES:
        raise PosttrainError(f"logger.mode: unknown W&B mode {mode!r}; use one of {', '.join(MODES)}")
    if mode == "online" and not has_credentials():
        raise PosttrainError(
            "logger.mode=online but no W&B credentials: set WANDB_API_KEY or run `wandb login`, "
            "or use logger.mode=offline and `wandb sync <run_dir>/wandb/offline-run-*` later"
        )
    return mode


def new_run_id() -> str:
    """A fresh W&B-style run id (8 lowercase letters and digits; ``wandb.util.generate_id`` is gone
    from wandb 0.31's public API)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def pipeline_name(run_dir: str | os.PathLike) -> str:
    """The W&B group of a pipeline run: the run directory's name."""
    return Path(run_dir).resolve().name


def artifact_name(group: str, stage: str) -> str:
    """``<group>-<stage>`` with the characters W&B rejects in artifact names replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{group}-{stage}")


@contextlib.contextmanager
def wandb_env(run_dir: Path) -> Iterator[None]:
    """Quiet W&B and keep its staging files under ``<run_dir>/wandb`` for the duration only (values
    the user already set win); the previous environment is restored on exit."""
    wanted = {"WANDB_SILENT": "true", "WANDB_DATA_DIR": str(run_dir / "wandb" / "data")}
    saved = {k: os.environ.get(k) for k in wanted}
    for k, v in wanted.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class DummyRun:
    """The null tracker (``logger.kind != wandb``, ``mode=disabled``, or a non-zero rank)."""

    run_id: str | None = None
    report_to: list[str] = field(default_factory=list)
    artifact: str | None = None
    checkpoint_dir: Path | None = None

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        """Log a dict of metrics (no-op here)."""

    def summary(self, metrics: dict[str, Any]) -> None:
        """Record final metrics in the run summary (no-op here)."""


@dataclass
class WandbRun(DummyRun):
    """A live W&B run for one stage; ``artifact`` is set after a successful exit."""

    run: Any = None

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self.run.log(data, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        self.run.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})


def _log_checkpoint(wb: Any, run: Any, name: str, ckpt: Path, metadata: dict[str, Any]) -> str | None:
    """Log ``ckpt`` as a ``model`` artifact; a symlinked pass-through is logged as a ``file://``
    reference (nothing copied). Returns ``<name>:latest``, or None when there is nothing to log."""
    target = ckpt.resolve()
    if not target.is_dir():
        log.warning("W&B: checkpoint %s does not exist locally; no artifact logged", ckpt)
        return None
    art = wb.Artifact(name, type="model", metadata={**metadata, "path": str(target)})
    if ckpt.is_symlink():
        art.add_reference(target.as_uri(), name="checkpoint")
    else:
        # A finished stage's checkpoint does not change: let W&B read it in place rather than
        # staging a second copy (an offline run's later ``wandb sync`` reads it from here).
        art.add_dir(str(ckpt), policy="immutable")
    run.log_artifact(art)
    return f"{name}:latest"


@contextlib.contextmanager
def stage_run(
    logger_cfg: Any,
    *,
    run_dir: Path,
    stage: str,
    kind: str,
    config: dict[str, Any],
    run_id: str | None = None,
    parent_artifact: str | None = None,
    checkpoint_dir: Path | None = None,
) -> Iterator[DummyRun]:
    """Track one stage. Yields a handle with ``run_id`` (store it in the stage manifest at once, so a
    resumed or requeued stage passes it back and continues the same run), ``report_to`` (for the
    Trainer), ``log``/``summary``, and a settable ``checkpoint_dir``. After a successful exit
    ``handle.artifact`` names the logged checkpoint artifact (``<group>-<stage>:latest``)."""
    rank = int(os.environ.get("RANK", "0"))
    if getattr(logger_cfg, "kind", "jsonl") != "wandb" or rank != 0:
        yield DummyRun(run_id=run_id, checkpoint_dir=checkpoint_dir)
        return
    mode = resolve_mode(logger_cfg)
    if mode == "disabled":
        yield DummyRun(run_id=run_id, checkpoint_dir=checkpoint_dir)
        return
    run_dir = Path(run_dir)
    group = pipeline_name(run_dir)
    with wandb_env(run_dir):
        import wandb

        (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        try:
            run = wandb.init(
                project=getattr(logger_cfg, "project", None) or "posttrain",
                entity=getattr(logger_cfg, "entity", None),
                group=group,
                job_type=kind,
                name=stage,
                id=run_id or new_run_id(),
                resume="allow",
                dir=str(run_dir),
                config=redact({**config, "lineage": {"parent_artifact": parent_artifact}}),
                mode=mode,
                tags=list(getattr(logger_cfg, "tags", None) or []),
                reinit="finish_previous",
            )
        except Exception as e:  # e.g. an unreachable server: say so in one line, not a stack of retries
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise PosttrainError(
                f"W&B init failed for stage {stage} (mode={mode}): {first_line}; "
                "logger.mode=offline logs locally for a later `wandb sync`"
            ) from None
        handle = WandbRun(run_id=run.id, report_to=["wandb"], checkpoint_dir=checkpoint_dir, run=run)
        if parent_artifact and mode == "online":
            try:
                run.use_artifact(parent_artifact)
            except Exception as e:  # lineage is a nicety: an unsynced parent must not fail the stage
                log.warning("W&B: cannot use parent artifact %s (%s)", parent_artifact, e)
        try:
            yield handle
        except BaseException as e:
            if isinstance(e, (SystemExit, KeyboardInterrupt)):  # preempted/requeued: a later attempt resumes
                run.mark_preempting()
            code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 1
            run.finish(exit_code=code or 1)
            raise
        try:
            if handle.checkpoint_dir is not None:
                meta = {"stage": stage, "kind": kind, "parent_artifact": parent_artifact}
                name = artifact_name(group, stage)
                handle.artifact = _log_checkpoint(wandb, run, name, Path(handle.checkpoint_dir), meta)
        except Exception as e:  # the stage itself succeeded; do not fail it over tracking
            log.warning("W&B: could not log the checkpoint artifact of %s (%s)", stage, e)
        finally:
            run.finish()
