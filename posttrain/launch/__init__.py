"""Launchers: local (in process), torchrun (multi-process), slurm (one sbatch job per stage)."""
