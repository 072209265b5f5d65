"""Opaque page tokens for the catalog's list and search RPCs.

A token is base64url(JSON) carrying where the next page starts and a fingerprint of
the request that issued it (which RPC, which category or query). Binding the token to
its request turns "token from another filter" into INVALID_ARGUMENT instead of a page
that silently skips or repeats products. Tokens are not signed: the catalog is public,
so a forged token can only ask for pages anyone may read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from services.kit.errors import InvalidArgument

TOKEN_VERSION = 1
FIELD = "page_token"


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: after a product id (keyset) or at an offset."""

    after: str | None = None
    offset: int = 0


def fingerprint(kind: str, scope: str) -> str:
    """Short digest of the request a token belongs to, e.g. ("list", "books")."""
    return hashlib.sha256(f"{kind}\x00{scope}".encode()).hexdigest()[:16]


def encode(cursor: PageCursor, request_fingerprint: str) -> str:
    body: dict[str, object] = {"v": TOKEN_VERSION, "f": request_fingerprint}
    if cursor.after is not None:
        body["a"] = cursor.after
    else:
        body["o"] = cursor.offset
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str, request_fingerprint: str) -> PageCursor:
    """The cursor in ``token``; InvalidArgument naming page_token when it is not ours."""
    if not token:
        return PageCursor()
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidArgument(FIELD, "is not a page token issued by this RPC") from None
    if not isinstance(body, dict) or body.get("v") != TOKEN_VERSION:
        raise InvalidArgument(FIELD, "is not a page token issued by this RPC")
    if body.get("f") != request_fingerprint:
        raise InvalidArgument(FIELD, "was issued for a different request (filter or query)")
    after = body.get("a")
    offset = body.get("o")
    if isinstance(after, str) and after:
        return PageCursor(after=after)
    # bool is an int subclass; a token never carries one, so refuse it as tampered.
    if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
        return PageCursor(offset=offset)
    raise InvalidArgument(FIELD, "is not a page token issued by this RPC")
