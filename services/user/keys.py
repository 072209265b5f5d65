"""The RSA key pair that signs access tokens, and the JWKS the edge verifies them with.

Files in ``<run_dir>/keys/``:

- ``jwt-signing.pem``: the private key (PKCS#8 PEM, mode 0600); only the user service
  reads it.
- ``jwks.json``: ``{"keys": [{"kty": "RSA", "kid", "use": "sig", "alg": "RS256", "n",
  "e"}]}``, the JSON Web Key Set Envoy's ``jwt_authn`` filter loads as ``local_jwks``.

The ``kid`` is the key's RFC 7638 thumbprint, so it is derived from the key itself and
the same key always gets the same id. `ensure_signing_key` is idempotent: it keeps an
existing key and only (re)writes jwks.json from it. Run it before the edge starts with
``python -m services.user.keys`` (setup does); the user service also calls it at start.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.kit.config import env_str
from services.kit.logging import get_logger

PRIVATE_KEY_FILE = "jwt-signing.pem"
JWKS_FILE = "jwks.json"
ALGORITHM = "RS256"
KEY_BITS = 2048

log = get_logger("user.keys")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def keys_dir(run_dir: Path) -> Path:
    return run_dir / "keys"


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 of the canonical JSON of the required members."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwks_document(keys: Sequence[SigningKey]) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def ensure_signing_key(directory: Path) -> SigningKey:
    """Load the signing key in ``directory``, creating it (and jwks.json) when missing.

    Safe when several processes call it at once (setup and the service starting):
    a new key is written to a temporary file and hard-linked into place, which fails
    if another process got there first, in which case that process's key is used.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / PRIVATE_KEY_FILE
    if not key_path.exists():
        _create_private_key(key_path)
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} does not hold an RSA private key")
    key = SigningKey(kid=thumbprint(private_key.public_key()), private_key=private_key)
    _write_if_changed(directory / JWKS_FILE, json.dumps(jwks_document([key]), indent=2) + "\n")
    return key


def _create_private_key(key_path: Path) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    fd, tmp_name = tempfile.mkstemp(prefix=".jwt-signing-", dir=key_path.parent)
    try:
        # mkstemp creates the file 0600, so the key is never readable by others.
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(pem)
            tmp.flush()
            os.fsync(tmp.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, key_path)
            log.info("jwt_signing_key_created", path=str(key_path))
    finally:
        os.unlink(tmp_name)


def _write_if_changed(path: Path, content: str) -> None:
    if path.exists() and path.read_text() == content:
        return
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as tmp:
        tmp.write(content)
    # The JWKS is public; Envoy (possibly another user in a container) must read it.
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, path)
    log.info("jwks_written", path=str(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.user.keys",
        description="Create the JWT signing key and jwks.json under <run-dir>/keys "
        "(keeps an existing key).",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(env_str("MESHMART_RUN_DIR", ".run")),
        help="run directory (default: $MESHMART_RUN_DIR or .run)",
    )
    args = parser.parse_args(argv)
    directory = keys_dir(args.run_dir)
    key = ensure_signing_key(directory)
    log.info("jwt_keys_ready", kid=key.kid, jwks=str(directory / JWKS_FILE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
