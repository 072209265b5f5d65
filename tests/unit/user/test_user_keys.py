"""The JWT signing key and the JWKS the edge reads."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from services.user.keys import JWKS_FILE, PRIVATE_KEY_FILE, ensure_signing_key, keys_dir


def test_creates_a_private_key_and_an_envoy_readable_jwks(tmp_path: Path) -> None:
    directory = keys_dir(tmp_path)
    key = ensure_signing_key(directory)

    private_mode = stat.S_IMODE((directory / PRIVATE_KEY_FILE).stat().st_mode)
    assert private_mode == 0o600
    jwks = json.loads((directory / JWKS_FILE).read_text())
    [jwk] = jwks["keys"]
    assert jwk["kid"] == key.kid
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert "d" not in jwk  # never the private exponent
    assert len(jwk["n"]) > 300  # a 2048-bit modulus, base64url


def test_is_idempotent_and_keeps_the_existing_key(tmp_path: Path) -> None:
    directory = keys_dir(tmp_path)
    first = ensure_signing_key(directory)
    pem = (directory / PRIVATE_KEY_FILE).read_bytes()
    (directory / JWKS_FILE).unlink()  # a lost JWKS is rebuilt from the kept key

    second = ensure_signing_key(directory)

    assert second.kid == first.kid
    assert (directory / PRIVATE_KEY_FILE).read_bytes() == pem
    assert json.loads((directory / JWKS_FILE).read_text())["keys"][0]["kid"] == first.kid


def test_runs_as_a_module_with_a_run_dir(tmp_path: Path) -> None:
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-m", "services.user.keys", "--run-dir", str(tmp_path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert (keys_dir(tmp_path) / JWKS_FILE).exists()
    assert [p.name for p in keys_dir(tmp_path).iterdir() if p.name.startswith(".")] == []
