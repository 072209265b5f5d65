from __future__ import annotations

import pytest

from services.user.keys import SigningKey, ensure_signing_key


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    # One RSA key for the whole session: generating one per test costs most of a second.
    return ensure_signing_key(tmp_path_factory.mktemp("keys"))
