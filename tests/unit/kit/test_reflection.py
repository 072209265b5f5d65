"""Operators can discover a kit-served server's services with the real grpcurl."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.kit.testing import running_server
from tests.unit.kit.echo_service import SERVICE, SPEC

GRPCURL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "grpcurl"


async def test_grpcurl_lists_services_via_reflection() -> None:
    # No skip: without grpcurl the operator story is broken, so this must fail.
    assert GRPCURL.exists(), f"{GRPCURL} missing: run tools/bootstrap-go.sh grpcurl"
    async with running_server([SPEC]) as target:
        process = await asyncio.create_subprocess_exec(
            str(GRPCURL),
            "-plaintext",
            "-max-time",
            "10",
            target,
            "list",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert sorted(stdout.decode().split()) == sorted(
        [SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
    )
