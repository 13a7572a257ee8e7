#!/usr/bin/env bash
# Install the Debian packages needed for the private single-node Slurm test cluster.
# Idempotent: does nothing when the binaries are already present.
#
#   slurm/install.sh            # installs slurmctld slurmd slurm-client munge if missing
#
# Exits non-zero with a clear message when the packages cannot be installed
# (not root, no apt-get, no network to the Debian mirror, ...).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
BINARIES=(slurmctld slurmd sbatch srun scontrol squeue scancel sinfo munged)

log() { echo "[slurm/install] $*" >&2; }

missing() {
  local b out=()
  for b in "${BINARIES[@]}"; do
    command -v "$b" >/dev/null 2>&1 || [[ -x "/usr/sbin/$b" ]] || out+=("$b")
  done
  echo "${out[*]:-}"
}

# `sinfo --version` needs a readable slurm.conf, so ask dpkg instead.
slurm_version() { dpkg-query -W -f='slurm-client ${Version}' slurm-client 2>/dev/null || echo "slurm (version unknown)"; }

m=$(missing)
if [[ -z "$m" ]]; then
  log "Slurm + munge already installed ($(slurm_version))"
  exit 0
fi
log "missing binaries: $m"

if ! command -v apt-get >/dev/null 2>&1; then
  log "ERROR: apt-get not found; install ${PACKAGES[*]} with your OS package manager"
  exit 2
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    log "ERROR: must run as root (or with passwordless sudo) to install ${PACKAGES[*]}"
    exit 2
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update -q >&2; then
  log "ERROR: 'apt-get update' failed (no network / mirror unreachable?)"
  exit 3
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >&2; then
  log "ERROR: 'apt-get install ${PACKAGES[*]}' failed"
  exit 3
fi

m=$(missing)
if [[ -n "$m" ]]; then
  log "ERROR: packages installed but binaries still missing: $m"
  exit 4
fi
log "installed: $(slurm_version)"
