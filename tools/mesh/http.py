"""Tiny JSON/text HTTP client for Consul's API and Envoy's admin API (loopback only).

urllib with proxies disabled: these are always local calls, and an http_proxy in a
developer's environment must never see them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HTTPFailure(Exception):
    """The request did not get a 2xx answer (or no answer at all)."""

    def __init__(self, url: str, status: int | None, body: str) -> None:
        super().__init__(f"{url}: {status or 'no answer'} {body[:300]}")
        self.status = status
        self.body = body


def request(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout: float = 5.0,
    token: str | None = None,
) -> tuple[str, dict[str, str]]:
    """``token``: a Consul ACL token, sent as X-Consul-Token."""
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("X-Consul-Token", token)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.read().decode(), dict(resp.headers.items())
    except urllib.error.HTTPError as error:
        raise HTTPFailure(url, error.code, error.read().decode(errors="replace")) from None
    except (urllib.error.URLError, OSError) as error:
        raise HTTPFailure(url, None, str(error)) from None


def get_text(url: str, timeout: float = 5.0, token: str | None = None) -> str:
    return request(url, timeout=timeout, token=token)[0]


def get_json(url: str, timeout: float = 5.0, token: str | None = None) -> Any:
    return json.loads(get_text(url, timeout, token))


def post(url: str, timeout: float = 5.0) -> str:
    return request(url, method="POST", data=b"", timeout=timeout)[0]


def register_service(
    consul_url: str,
    registration: dict[str, Any],
    timeout: float = 30.0,
    token_file: Path | None = None,
) -> None:
    """PUT a registration to the local Consul agent, retried with back-off while the agent
    is not up yet (supervisord starts Consul and the registering program together) and,
    with ACLs (``token_file``), while `up` has not written the token yet.
    Raises HTTPFailure when the agent answers with an error or the timeout runs out."""
    url = f"{consul_url}/v1/agent/service/register?replace-existing-checks=true"
    body = json.dumps(registration).encode()
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            token = None
            if token_file is not None:
                if not token_file.exists():
                    raise HTTPFailure(url, None, f"no ACL token in {token_file} yet")
                token = token_file.read_text().strip()
            request(url, method="PUT", data=body, timeout=5, token=token)
            return
        except HTTPFailure as failure:
            if failure.status is not None or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
