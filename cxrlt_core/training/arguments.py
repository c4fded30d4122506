"""The arguments of ``cxrlt train`` and ``python -m cxrlt_core.training``: argparse only, so that building the CLI's
parser imports no torch."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cxrlt train`` (and of ``python -m cxrlt_core.training``)."""
    parser.add_argument(
        "--config", help="a shipped recipe's name (e.g. demo_csra) or a recipe YAML; default on --resume: the run's"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. optim.phase2.epochs=3"
    )
    parser.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    parser.add_argument("--run-name", help="run id: letters, digits, '.', '_', '-' (default <recipe>-<timestamp>)")
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)  # set by the launcher for torchrun children
    parser.add_argument("--resume", action="store_true", help="continue the run --run-name from its last epoch")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine (torchrun DDP; GPUs or CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    slurm = parser.add_argument_group("SLURM (submitit)")
    slurm.add_argument("--slurm", action="store_true", help="submit to SLURM with submitit instead of running here")
    slurm.add_argument("--partition", help="SLURM partition")
    slurm.add_argument("--gpus", type=int, default=1, help="GPUs (= tasks) per node")
    slurm.add_argument("--nodes", type=int, default=1, help="nodes")
    slurm.add_argument("--time", default="24:00:00", help="time limit: minutes, HH:MM:SS or D-HH:MM:SS")
    slurm.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per task (DataLoader workers)")
    slurm.add_argument("--mem-gb", type=int, default=None, help="memory per node in GB")
    slurm.add_argument("--account", help="SLURM account")
    slurm.add_argument("--qos", help="SLURM QoS")
    slurm.add_argument("--slurm-cluster", default=None, help=argparse.SUPPRESS)  # "debug"/"local" for tests
