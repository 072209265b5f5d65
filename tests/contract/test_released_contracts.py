"""The contracts stay compatible with the released ones (proto/released.binpb, a buf image
of proto/ as last released; `make release-contracts` records a new release): a change
that would break the other language's clients fails here and in `make breaking`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness import ROOT

BUF = ROOT / ".venv" / "bin" / "buf"
RELEASED = ROOT / "proto" / "released.binpb"
RECOMMENDATION = Path("meshmart/recommendation/v1/recommendation.proto")
# RecommendRequest's limit field, with its validation rule (a field option).
LIMIT = "  int32 limit = 2 [(meshmart.options.v1.rules) = {gte: 1, lte: 50, ignore_zero: true}];\n"


def breaking(proto_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(proto_dir), "--against", str(RELEASED)],
        capture_output=True, text=True, check=False, timeout=120,
    )


def edited_copy(tmp_path: Path, old: str, new: str) -> Path:
    """proto/ copied to tmp_path with one edit in recommendation.proto."""
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy, ignore=shutil.ignore_patterns("*.binpb"))
    contract = copy / RECOMMENDATION
    text = contract.read_text()
    assert old in text, f"{old!r} is not in {RECOMMENDATION}"
    contract.write_text(text.replace(old, new, 1))
    return copy


def test_the_contracts_are_compatible_with_the_released_ones() -> None:
    result = breaking(ROOT / "proto")

    assert result.returncode == 0, result.stdout + result.stderr


def test_an_added_field_is_compatible(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        "  RecommendationSource source = 2;\n",
        "  RecommendationSource source = 2;\n  // Added later.\n  string note = 3;\n",
    )

    assert breaking(copy).returncode == 0


def test_a_deleted_field_is_reported(tmp_path: Path) -> None:
    copy = edited_copy(tmp_path, LIMIT, "  reserved 2;\n")
    result = breaking(copy)

    assert result.returncode != 0
    assert "limit" in result.stdout and "RecommendRequest" in result.stdout, result.stdout


def test_a_renumbered_field_is_reported(tmp_path: Path) -> None:
    copy = edited_copy(tmp_path, "  string user_id = 1 [", "  string user_id = 7 [")
    result = breaking(copy)

    assert result.returncode != 0
    assert "user_id" in result.stdout, result.stdout


def test_a_changed_field_type_is_reported(tmp_path: Path) -> None:
    copy = edited_copy(tmp_path, "  int32 limit = 2 [", "  int64 limit = 2 [")
    result = breaking(copy)

    assert result.returncode != 0
    assert "limit" in result.stdout, result.stdout
