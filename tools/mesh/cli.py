"""What every command line of tools/mesh shares: the options that select a mesh run
(--address, --run-dir), the plan they select, and the hand-over of a wrapper program
to the binary it starts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tools.mesh.plan import MeshPlan
from tools.mesh.topology import ROOT, load_topology


def mesh_parser(prog: str, doc: str | None, commands: Sequence[str]) -> argparse.ArgumentParser:
    """A parser of ``command`` (one of ``commands``) and the options of a mesh run."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(commands))
    parser.add_argument("--address", default="127.0.0.1", help="loopback address of the mesh")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    return parser


def plan_of(args: argparse.Namespace, **settings: Any) -> MeshPlan:
    """The plan of the run that ``args`` (from ``mesh_parser``) select."""
    return MeshPlan(topology=load_topology(), address=args.address,
                    run_dir=args.run_dir.resolve(), **settings)


def run_args(plan: MeshPlan) -> list[str]:
    """The options that select ``plan``'s run, for a program of that run."""
    return ["--address", plan.address, "--run-dir", str(plan.run_dir)]


def exec_binary(note: str, command: list[str]) -> NoReturn:
    """Say ``note`` on stderr, then become ``command`` (supervisord keeps the pid)."""
    sys.stderr.write(f"{note}; exec {command[0]}\n")
    sys.stderr.flush()
    os.execv(command[0], command)
