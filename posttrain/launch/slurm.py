"""Render one sbatch script per pipeline stage and submit them as an ``afterok`` dependency chain.

Pure Python on top of the Slurm CLI (``sbatch``/``scontrol``/``squeue``/``scancel``): no Hydra,
no submitit, no accounting DB needed.  The script template is ``posttrain/launch/templates/stage.sbatch.j2``
(override the directory with ``POSTTRAIN_SLURM_TEMPLATE_DIR``).

``command`` semantics: a ``list[str]`` is an argv (shell-quoted, the recommended form: the batch
shell forwards USR1 straight to that process); a ``str`` is a shell snippet run as ``bash -c``
(bash execs a single simple command, so the signal still reaches it; for compound snippets end
with ``exec python ...``).  With ``nodes * nproc_per_node > 1`` the command is launched by
``srun`` + ``torchrun --no-python`` on every node (each worker runs the command itself; set
``torchrun=[sys.executable, "-m", "torch.distributed.run"]`` when torchrun is not on the job's PATH).
Signals that go through ``srun`` reach *every* process of the step (slurmstepd/proctrack), so
torchrun is started with USR1 ignored; spawn-started DataLoader workers should ignore USR1 too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SlurmJobSpec",
    "SlurmSubmitError",
    "cancel",
    "job_info",
    "job_states",
    "render_sbatch",
    "slurm_available",
    "submit_chain",
]

_TEMPLATE_NAME = "stage.sbatch.j2"
_DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"  # package data
_NAME_OK = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ENV_KEY_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SlurmSubmitError(RuntimeError):
    """``sbatch`` refused a stage; the message carries the stage name and sbatch's stderr."""

    def __init__(self, stage: str, returncode: int, stderr: str, submitted: list[str] | None = None):
        self.stage = stage
        self.returncode = returncode
        self.stderr = stderr.strip()
        self.submitted = list(submitted or [])
        super().__init__(f"sbatch failed for stage {stage!r} (exit {returncode}): {self.stderr}")


@dataclass
class SlurmJobSpec:
    name: str
    command: list[str] | str
    workdir: str | os.PathLike
    log_dir: str | os.PathLike
    partition: str = "debug"
    account: str | None = None
    nodes: int = 1
    nproc_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem: str = "4G"
    time: str = "01:00:00"
    signal_seconds: int = 60
    container_image: str | None = None
    container_mounts: str | list[str] | None = None
    extra_sbatch: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # launcher for multi-process stages, e.g. [sys.executable, "-m", "torch.distributed.run"]
    torchrun: list[str] | str = "torchrun"
    # submit this existing batch script as-is (NeMo-RL's ray.sub) instead of rendering ours; ``command``
    # is then only recorded, the resources go on sbatch's command line and ``env`` into its environment
    script: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_OK.match(self.name):
            raise ValueError(f"job name {self.name!r} must match {_NAME_OK.pattern}")
        if self.nodes < 1 or self.nproc_per_node < 1 or self.cpus_per_task < 1 or self.gpus_per_node < 0:
            raise ValueError(f"{self.name}: nodes/nproc_per_node/cpus_per_task must be >= 1, gpus >= 0")
        if not self.command:
            raise ValueError(f"{self.name}: empty command")
        for key in self.env:
            if not _ENV_KEY_OK.match(key):
                raise ValueError(f"{self.name}: invalid environment variable name {key!r}")
        for p in (self.workdir, self.log_dir):
            if any(c.isspace() for c in str(p)):
                raise ValueError(f"{self.name}: #SBATCH paths may not contain whitespace: {p!r}")

    @property
    def multiproc(self) -> bool:
        return self.nodes * self.nproc_per_node > 1

    @property
    def output_path(self) -> Path:
        return Path(self.log_dir) / f"{self.name}-%j.out"

    @property
    def error_path(self) -> Path:
        return Path(self.log_dir) / f"{self.name}-%j.err"


def _template():
    import jinja2

    tdir = os.environ.get("POSTTRAIN_SLURM_TEMPLATE_DIR") or str(_DEFAULT_TEMPLATE_DIR)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(tdir),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(_TEMPLATE_NAME)


def render_sbatch(spec: SlurmJobSpec) -> str:
    """The full sbatch script for one stage (dependencies are *not* in it; see :func:`submit_chain`)."""
    if isinstance(spec.command, str):
        command = shlex.join(["bash", "-c", spec.command])
    else:
        command = shlex.join([str(a) for a in spec.command])
    container_args = ""
    if spec.container_image:
        container_args = f"--container-image={shlex.quote(spec.container_image)} "
        mounts = spec.container_mounts
        if mounts:
            mounts = ",".join(mounts) if isinstance(mounts, list | tuple) else str(mounts)
            container_args += f"--container-mounts={shlex.quote(mounts)} "
    extra = [ln if ln.lstrip().startswith("#SBATCH") else f"#SBATCH {ln.strip()}" for ln in spec.extra_sbatch]
    return _template().render(
        name=spec.name,
        partition=spec.partition,
        account=spec.account,
        nodes=spec.nodes,
        nproc_per_node=spec.nproc_per_node,
        gpus_per_node=spec.gpus_per_node,
        cpus_per_task=spec.cpus_per_task,
        mem=spec.mem,
        time=spec.time,
        workdir=str(spec.workdir),
        workdir_q=shlex.quote(str(spec.workdir)),
        output=str(spec.output_path),
        error=str(spec.error_path),
        signal_seconds=int(spec.signal_seconds),
        extra_sbatch=extra,
        env=[(k, shlex.quote(str(v))) for k, v in spec.env.items()],
        multiproc=spec.multiproc,
        container_args=container_args,
        command=command,
        torchrun=spec.torchrun if isinstance(spec.torchrun, str) else shlex.join(spec.torchrun),
    )


def _run(
    args: list[str], timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, env=env)


def script_options(spec: SlurmJobSpec) -> list[str]:
    """sbatch options for a ``spec.script`` job: what our template would put in ``#SBATCH`` lines."""
    opts = [
        f"--job-name={spec.name}",
        f"--nodes={spec.nodes}",
        f"--time={spec.time}",
        f"--mem={spec.mem}",
        f"--chdir={spec.workdir}",
        f"--output={spec.output_path}",
        f"--error={spec.error_path}",
    ]
    opts += [f"--{k}={v}" for k, v in (("partition", spec.partition), ("account", spec.account)) if v]
    if spec.gpus_per_node:
        opts.append(f"--gres=gpu:{spec.gpus_per_node}")
    return opts + [ln.replace("#SBATCH", "", 1).strip() for ln in spec.extra_sbatch]


def submit_chain(
    specs: list[SlurmJobSpec],
    *,
    script_dir: str | os.PathLike,
    depends_on: str | None = None,
    cancel_on_error: bool = True,
) -> list[str]:
    """Write and submit ``specs`` in order, each ``afterok`` on the previous one; return the job ids.

    Every job also gets ``--kill-on-invalid-dep=yes`` so a failed stage cancels its dependents
    instead of leaving them pending forever.  On an sbatch failure nothing after the failing stage
    is submitted, and (``cancel_on_error=True``, the default) the jobs already submitted by this
    call are cancelled, so a half-submitted pipeline never runs; the error lists them in
    ``.submitted``.  ``depends_on`` chains the first stage after an existing job.
    """
    script_dir = Path(script_dir)
    script_dir.mkdir(parents=True, exist_ok=True)
    submitted: list[str] = []
    prev = depends_on
    for spec in specs:
        Path(spec.log_dir).mkdir(parents=True, exist_ok=True)  # Slurm does not create output dirs
        cmd, env = ["sbatch", "--parsable"], None
        if spec.script:
            script = Path(spec.script)
            cmd += script_options(spec)
            env = {**os.environ, **spec.env}
        else:
            script = script_dir / f"{spec.name}.sbatch"
            script.write_text(render_sbatch(spec))
            script.chmod(0o755)
        if prev:
            cmd += [f"--dependency=afterok:{prev}", "--kill-on-invalid-dep=yes"]
        cmd.append(str(script))
        try:
            res = _run(cmd, env=env)
            rc, out, err = res.returncode, res.stdout, res.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, out, err = 127, "", f"{type(exc).__name__}: {exc}"
        job_id = out.strip().split(";")[0] if rc == 0 else ""
        if rc != 0 or not job_id.isdigit():
            if cancel_on_error and submitted:
                cancel(submitted)
            raise SlurmSubmitError(spec.name, rc, err or out or "no job id printed", submitted)
        submitted.append(job_id)
        prev = job_id
    return submitted


def job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (values with spaces are kept whole); {} if unknown/purged."""
    try:
        res = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if res.returncode != 0 or not res.stdout.strip():
        return {}
    line = res.stdout.strip().splitlines()[0]
    info: dict[str, str] = {}
    key = None
    for tok in line.split(" "):
        m = re.match(r"^([A-Za-z][A-Za-z0-9_/:]*)=(.*)$", tok)
        if m:
            key = m.group(1)
            info[key] = m.group(2)
        elif key is not None:  # continuation of a value containing spaces
            info[key] += " " + tok
    return info


def job_states(job_ids: list[str] | str) -> dict[str, str]:
    """Map each job id to its Slurm state (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``,
    ``CANCELLED``, ...); ``UNKNOWN`` when neither scontrol nor squeue knows it any more."""
    ids = [job_ids] if isinstance(job_ids, str) else [str(j) for j in job_ids]
    states: dict[str, str] = {}
    for jid in ids:
        state = job_info(jid).get("JobState", "")
        states[jid] = state.split()[0] if state else ""
    missing = [j for j, s in states.items() if not s]
    if missing:
        try:
            res = _run(["squeue", "-h", "-j", ",".join(missing), "-o", "%i %T"], timeout=15)
            for ln in res.stdout.splitlines() if res.returncode == 0 else []:
                parts = ln.split()
                if len(parts) == 2 and parts[0] in states:
                    states[parts[0]] = parts[1]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {j: (s or "UNKNOWN") for j, s in states.items()}


def cancel(job_ids: list[str] | str, *, signal: str | None = None) -> None:
    """``scancel`` the given jobs (or only send ``signal`` to them); errors are ignored."""
    ids = [job_ids] if isinstance(job_ids, str) else [str(j) for j in job_ids]
    if not ids:
        return
    cmd = ["scancel"] + ([f"--signal={signal}"] if signal else []) + ids
    try:
        _run(cmd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


def slurm_available() -> tuple[bool, str]:
    """(True, "") when ``sbatch`` is on PATH and ``sinfo`` answers; else (False, why not)."""
    if shutil.which("sbatch") is None:
        return False, "sbatch not found on PATH"
    try:
        res = _run(["sinfo", "-h", "-o", "%P %a"], timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"sinfo did not answer: {exc}"
    if res.returncode != 0:
        return False, f"sinfo failed (exit {res.returncode}): {res.stderr.strip()[-500:]}"
    return True, ""
