"""What every command line of tools/mesh shares: the options that select a mesh run
(--address, --run-dir, --pods), the plan they select, and the hand-over of a wrapper
program to the binary it starts.

An `up` that starts a mesh runs every instance in its own network namespace
(tools/mesh/pods.py) where it can (root); where it cannot, the run shares the loopback and
`up` says so in one line. --no-pods (`make up PODS=0`) asks for the shared loopback,
--pods for pods. A run that has pods records it in <run>/pods, so `down`, `status`, a
second `up` and the rest find them without the option."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from tools.mesh.plan import MeshPlan
from tools.mesh.pods import pods_unavailable
from tools.mesh.topology import ROOT, load_topology


def mesh_parser(prog: str, doc: str | None, commands: Sequence[str]) -> argparse.ArgumentParser:
    """A parser of ``command`` (one of ``commands``) and the options of a mesh run."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(commands))
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the mesh")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    parser.add_argument("--pods", action=argparse.BooleanOptionalAction, default=None,
                        help="each instance in its own network namespace (needs root; "
                             "what an `up` that starts a mesh does where it can), or not")
    return parser


def plan_of(args: argparse.Namespace, **settings: Any) -> MeshPlan:
    """The plan of the run that ``args`` (from ``mesh_parser``) select."""
    plan = MeshPlan(topology=load_topology(), address=args.address,
                    run_dir=args.run_dir.resolve(), **settings)
    return replace(plan, pods=pods_wanted(args, plan) and not pods_unavailable())


def pods_wanted(args: argparse.Namespace, plan: MeshPlan) -> bool:
    """--pods / --no-pods; else what the run has (its <run>/pods record), and pods for an
    `up` that starts a new mesh (not one that completes a running mesh: it keeps its
    layout)."""
    if args.pods is not None:
        return bool(args.pods)
    if plan.pods_record.exists():
        return True
    # Imported here: the containers' one-shots (tools/compose/nats.py, edge.py) import
    # this module in images without supervisord (docker/requirements.txt).
    from tools.mesh.supervisor import Supervisor

    return args.command == "up" and not Supervisor(plan).running()


def pods_notice(args: argparse.Namespace, plan: MeshPlan) -> str:
    """The one line `up` prints when pods were wanted but cannot be ("" otherwise)."""
    if plan.pods or not pods_wanted(args, plan):
        return ""
    return (f"notice: the mesh is NOT isolated: {pods_unavailable()}, so every instance "
            f"shares the loopback {plan.address}")


def run_args(plan: MeshPlan) -> list[str]:
    """The options that select ``plan``'s run, for a program of that run."""
    pods = "--pods" if plan.pods else "--no-pods"
    return ["--address", plan.address, "--run-dir", str(plan.run_dir), pods]


def exec_binary(note: str, command: list[str]) -> NoReturn:
    """Say ``note`` on stderr, then become ``command`` (supervisord keeps the pid)."""
    sys.stderr.write(f"{note}; exec {command[0]}\n")
    sys.stderr.flush()
    os.execv(command[0], command)
