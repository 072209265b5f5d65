"""What every command line of tools/mesh shares: the options that select a mesh run
(--address, --run-dir, --pods), the plan they select, and the hand-over of a wrapper
program to the binary it starts.

--pods asks for every instance in its own network namespace (tools/mesh/pods.py, `make
up PODS=1`); where that cannot be (no root) the run shares the loopback and `up` says so
in one line. A run that has pods records it in <run>/pods, so `down`, `status` and the
rest find them without the option."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tools.mesh.plan import PODS_RECORD, MeshPlan
from tools.mesh.pods import pods_unavailable
from tools.mesh.topology import ROOT, load_topology


def mesh_parser(prog: str, doc: str | None, commands: Sequence[str]) -> argparse.ArgumentParser:
    """A parser of ``command`` (one of ``commands``) and the options of a mesh run."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(commands))
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the mesh")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    parser.add_argument("--pods", action="store_true",
                        help="each instance in its own network namespace (needs root)")
    return parser


def plan_of(args: argparse.Namespace, **settings: Any) -> MeshPlan:
    """The plan of the run that ``args`` (from ``mesh_parser``) select."""
    run_dir = args.run_dir.resolve()
    wanted = args.pods or (run_dir / PODS_RECORD).exists()
    return MeshPlan(topology=load_topology(), address=args.address, run_dir=run_dir,
                    pods=wanted and not pods_unavailable(), **settings)


def pods_notice(args: argparse.Namespace, plan: MeshPlan) -> str:
    """The one line `up` prints when pods were asked for but cannot be ("" otherwise)."""
    if not args.pods or plan.pods:
        return ""
    return (f"notice: the mesh is NOT isolated: {pods_unavailable()}, so every instance "
            f"shares the loopback {plan.address}")


def run_args(plan: MeshPlan) -> list[str]:
    """The options that select ``plan``'s run, for a program of that run."""
    pods = ["--pods"] if plan.pods else []
    return ["--address", plan.address, "--run-dir", str(plan.run_dir), *pods]


def exec_binary(note: str, command: list[str]) -> NoReturn:
    """Say ``note`` on stderr, then become ``command`` (supervisord keeps the pid)."""
    sys.stderr.write(f"{note}; exec {command[0]}\n")
    sys.stderr.flush()
    os.execv(command[0], command)
