"""`python -m tools.compose [write|check]`: docker-compose.yml and docker/requirements.txt.

  write   (default, what `make compose` runs) write both files from topology.toml, the
          pinned versions and the code's imports
  check   exit 1 when a committed file differs from what `write` would produce now
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.compose.model import (
    COMPOSE_FILE,
    LOCAL_OVERRIDE,
    PROMETHEUS_CONFIG,
    RUNTIME_REQUIREMENTS,
    ComposeError,
    ComposeModel,
)
from tools.compose.render import render_compose, render_local_override
from tools.compose.requirements import RequirementsError, runtime_requirements
from tools.generated import sync
from tools.mesh.topology import TopologyError


def outputs() -> dict[Path, str]:
    model = ComposeModel.load()
    return {
        COMPOSE_FILE: render_compose(model),
        LOCAL_OVERRIDE: render_local_override(model),
        PROMETHEUS_CONFIG: model.prometheus_config(),
        RUNTIME_REQUIREMENTS: runtime_requirements(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="write", choices=["write", "check"])
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except (ComposeError, RequirementsError, TopologyError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return sync(files, check=args.command == "check", remedy="make compose")

if __name__ == "__main__":
    sys.exit(main())
