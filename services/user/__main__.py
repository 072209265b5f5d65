"""``python -m services.user``: serve UserService."""

from __future__ import annotations

from services.kit.config import load_config
from services.kit.db import Database
from services.kit.events import ServiceEvents
from services.kit.logging import get_logger
from services.kit.outbox import Outbox, OutboxRelay
from services.kit.server import run, serve
from services.user.domain import UserAccounts
from services.user.keys import ensure_signing_key, keys_dir
from services.user.passwords import Passwords
from services.user.servicer import UserServicer, service_spec
from services.user.settings import load_settings
from services.user.store import DB_FILE, MIGRATIONS, UserStore
from services.user.tokens import TokenIssuer

log = get_logger("user")


async def main() -> None:
    config = load_config("user")
    settings = load_settings()
    key = ensure_signing_key(keys_dir(config.run_dir))
    log.info("user.signing_key", kid=key.kid)
    db = Database(config.data_dir / DB_FILE, MIGRATIONS)
    outbox = Outbox("user")
    # Off without MESHMART_NATS_URL: events then wait in the outbox.
    events = ServiceEvents.from_env(
        config, lambda bus, _: [OutboxRelay(db, bus, holder=config.instance_id, outbox=outbox)]
    )
    try:
        accounts = UserAccounts(
            UserStore(db, outbox),
            Passwords(),
            TokenIssuer(key, ttl_seconds=settings.token_ttl_seconds),
        )
        await serve(config, [service_spec(UserServicer(accounts))], on_start=events.start)
    finally:
        await events.close()
        db.close()


if __name__ == "__main__":
    run(main)
