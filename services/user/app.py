"""Wiring of the user service: its signing key and database -> UserAccounts -> servicer,
and the relay of its outbox (off without MESHMART_NATS_URL: events then wait there)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from services.kit.config import ServiceConfig
from services.kit.db import open_database
from services.kit.events import EventSettings, ServiceEvents
from services.kit.logging import get_logger
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.server import Service, opened
from services.user.domain import UserAccounts
from services.user.keys import ensure_signing_key, keys_dir
from services.user.passwords import Passwords
from services.user.servicer import UserServicer, service_spec
from services.user.settings import UserSettings, load_settings
from services.user.store import DB_FILE, MIGRATIONS, UserStore
from services.user.tokens import TokenIssuer

log = get_logger("user")


def build(
    config: ServiceConfig,
    stack: AsyncExitStack,
    settings: UserSettings | None = None,
    *,
    passwords: Passwords | None = None,
    event_settings: EventSettings | None = None,
) -> Service:
    """``passwords``: the hasher (tests pass cheap Argon2 parameters)."""
    settings = settings or load_settings()
    key = ensure_signing_key(keys_dir(config.run_dir))
    log.info("user.signing_key", kid=key.kid)
    db = opened(stack, open_database(config, DB_FILE, MIGRATIONS))
    outbox = Outbox("user")
    events = opened(stack, ServiceEvents.from_env(
        config,
        lambda bus, _: [OutboxRelay(db, bus, holder=config.instance_id, outbox=outbox)],
        settings=event_settings,
    ))
    accounts = UserAccounts(
        UserStore(db, outbox),
        passwords or Passwords(),
        TokenIssuer(key, ttl_seconds=settings.token_ttl_seconds),
    )
    return Service(specs=[service_spec(UserServicer(accounts))], events=events)
