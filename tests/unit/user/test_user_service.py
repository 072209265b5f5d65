"""UserService over real gRPC, with real keys in tmp_path and a real SQLite file, and
again a PostgreSQL database of the session cluster."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import jwt
import pytest
from argon2 import PasswordHasher
from meshmart.user.v1 import user_pb2, user_pb2_grpc

from harness.postgres import Databases
from services.kit.context import USER_ID_KEY
from services.kit.db import Database
from services.kit.testing import running_server
from services.user.domain import UserAccounts
from services.user.keys import JWKS_FILE, ensure_signing_key, keys_dir
from services.user.passwords import Passwords
from services.user.servicer import UserServicer, service_spec
from services.user.store import DB_FILE, MIGRATIONS, UserStore
from services.user.tokens import AUDIENCE, ISSUER, TokenIssuer
from tests.unit.bad_request import violated_fields

TIMEOUT = 5.0
TTL = 900
PASSWORD = "correct horse battery"


class CountingPasswords(Passwords):
    """Real Argon2 (cheap parameters), counting how many hashes each login verifies."""

    def __init__(self) -> None:
        super().__init__(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.verifications = 0

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return await super().verify(password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        self.verifications += 1
        await super().verify_dummy(password)


@dataclass
class UserApi:
    stub: user_pb2_grpc.UserServiceAsyncStub
    passwords: CountingPasswords
    run_dir: Path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key pair for the module: RSA key generation is the slow part of setup."""
    directory = tmp_path_factory.mktemp("run")
    ensure_signing_key(keys_dir(directory))
    return directory


@pytest.fixture
async def api(databases: Databases, run_dir: Path) -> AsyncIterator[UserApi]:
    key = ensure_signing_key(keys_dir(run_dir))
    db = Database(databases.target("user", DB_FILE), MIGRATIONS)
    passwords = CountingPasswords()
    accounts = UserAccounts(UserStore(db), passwords, TokenIssuer(key, ttl_seconds=TTL))
    try:
        async with (
            running_server([service_spec(UserServicer(accounts))]) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            stub = cast(
                "user_pb2_grpc.UserServiceAsyncStub", user_pb2_grpc.UserServiceStub(channel)
            )
            yield UserApi(stub, passwords, run_dir)
    finally:
        db.close()


async def register(
    api: UserApi, email: str = "Ada@Example.com", full_name: str = "Ada Lovelace"
) -> user_pb2.User:
    response = await api.stub.Register(
        user_pb2.RegisterRequest(email=email, password=PASSWORD, full_name=full_name),
        timeout=TIMEOUT,
    )
    user: user_pb2.User = response.user
    return user


async def test_register_then_login_issues_a_token_for_the_user(api: UserApi) -> None:
    user = await register(api, email="  Ada@Example.COM ")
    assert user.user_id.startswith("usr-")
    assert user.email == "ada@example.com"
    assert user.full_name == "Ada Lovelace"
    assert user.created_at.seconds > 0 and user.updated_at == user.created_at

    login = await api.stub.Login(
        user_pb2.LoginRequest(email="ADA@example.com", password=PASSWORD), timeout=TIMEOUT
    )
    assert login.token_type == "Bearer"
    assert login.expires_in == TTL
    assert login.user == user
    assert login.access_token.count(".") == 2


async def test_token_verifies_against_the_jwks_public_key(api: UserApi) -> None:
    user = await register(api)
    login = await api.stub.Login(
        user_pb2.LoginRequest(email=user.email, password=PASSWORD), timeout=TIMEOUT
    )
    jwks = json.loads((keys_dir(api.run_dir) / JWKS_FILE).read_text())
    header = jwt.get_unverified_header(login.access_token)
    assert header["alg"] == "RS256"
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(
        login.access_token,
        public_key,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    assert claims["sub"] == user.user_id
    assert claims["exp"] - claims["iat"] == login.expires_in


async def test_registering_an_email_twice_is_already_exists(api: UserApi) -> None:
    await register(api, email="grace@example.com")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(api, email="GRACE@example.com", full_name="Someone Else")
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_wrong_password_and_unknown_email_get_the_same_answer(api: UserApi) -> None:
    await register(api, email="alan@example.com")

    api.passwords.verifications = 0
    with pytest.raises(grpc.aio.AioRpcError) as wrong_password:
        await api.stub.Login(
            user_pb2.LoginRequest(email="alan@example.com", password="not the password"),
            timeout=TIMEOUT,
        )
    after_wrong_password = api.passwords.verifications
    with pytest.raises(grpc.aio.AioRpcError) as unknown_email:
        await api.stub.Login(
            user_pb2.LoginRequest(email="nobody@example.com", password="not the password"),
            timeout=TIMEOUT,
        )

    assert wrong_password.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert unknown_email.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.value.details() == unknown_email.value.details()
    # Same work for both: one Argon2 verification each (a dummy hash for the unknown
    # email), so the response time does not reveal which emails exist either.
    assert after_wrong_password == 1
    assert api.passwords.verifications == 2


@pytest.mark.parametrize(
    ("email", "password", "full_name", "field"),
    [
        ("not-an-email", PASSWORD, "Ada", "email"),
        ("", PASSWORD, "Ada", "email"),
        ("ada@example.com", "short7!", "Ada", "password"),
        ("ada@example.com", "x" * 129, "Ada", "password"),
        ("ada@example.com", PASSWORD, "   ", "full_name"),
        ("ada@example.com", PASSWORD, "x" * 201, "full_name"),
    ],
)
async def test_register_validates_each_field(
    api: UserApi, email: str, password: str, full_name: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.Register(
            user_pb2.RegisterRequest(email=email, password=password, full_name=full_name),
            timeout=TIMEOUT,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]


async def test_get_user_honours_the_forwarded_caller(api: UserApi) -> None:
    user = await register(api)
    request = user_pb2.GetUserRequest(user_id=user.user_id)

    internal = await api.stub.GetUser(request, timeout=TIMEOUT)
    as_self = await api.stub.GetUser(
        request, metadata=((USER_ID_KEY, user.user_id),), timeout=TIMEOUT
    )
    assert internal.user == as_self.user == user

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.GetUser(request, metadata=((USER_ID_KEY, "usr-other"),), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_get_unknown_user_is_not_found(api: UserApi) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.GetUser(user_pb2.GetUserRequest(user_id="usr-missing"), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_update_profile_changes_only_the_fields_that_are_set(api: UserApi) -> None:
    user = await register(api)
    with_phone = await api.stub.UpdateProfile(
        user_pb2.UpdateProfileRequest(user_id=user.user_id, phone="+4915112345678"),
        timeout=TIMEOUT,
    )
    assert with_phone.user.phone == "+4915112345678"
    assert with_phone.user.full_name == "Ada Lovelace"
    assert with_phone.user.updated_at.ToDatetime() >= user.updated_at.ToDatetime()

    renamed = await api.stub.UpdateProfile(
        user_pb2.UpdateProfileRequest(user_id=user.user_id, full_name="Ada King"),
        timeout=TIMEOUT,
    )
    assert (renamed.user.full_name, renamed.user.phone) == ("Ada King", "+4915112345678")

    cleared = await api.stub.UpdateProfile(
        user_pb2.UpdateProfileRequest(user_id=user.user_id, phone=""), timeout=TIMEOUT
    )
    assert (cleared.user.full_name, cleared.user.phone) == ("Ada King", "")
    fetched = await api.stub.GetUser(user_pb2.GetUserRequest(user_id=user.user_id), timeout=TIMEOUT)
    assert fetched.user == cleared.user


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [({"phone": "0151 1234"}, "phone"), ({"full_name": ""}, "full_name")],
)
async def test_update_profile_validates_set_fields(
    api: UserApi, request_fields: dict[str, str], field: str
) -> None:
    user = await register(api)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.UpdateProfile(
            user_pb2.UpdateProfileRequest(user_id=user.user_id, **request_fields),
            timeout=TIMEOUT,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]


async def test_update_profile_of_another_user_is_denied(api: UserApi) -> None:
    user = await register(api)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.stub.UpdateProfile(
            user_pb2.UpdateProfileRequest(user_id=user.user_id, full_name="Mallory"),
            metadata=((USER_ID_KEY, "usr-mallory"),),
            timeout=TIMEOUT,
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    unchanged = await api.stub.GetUser(
        user_pb2.GetUserRequest(user_id=user.user_id), timeout=TIMEOUT
    )
    assert unchanged.user.full_name == "Ada Lovelace"


async def test_login_upgrades_a_hash_made_with_older_parameters(
    databases: Databases, run_dir: Path
) -> None:
    key = ensure_signing_key(keys_dir(run_dir))
    db = Database(databases.target("user", DB_FILE), MIGRATIONS)
    store = UserStore(db)
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    new = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    tokens = TokenIssuer(key, ttl_seconds=TTL)
    user = await UserAccounts(store, old, tokens).register(
        email="ada@example.com", password=PASSWORD, full_name="Ada"
    )
    record = store.by_id(user.user_id)
    assert record is not None and new.needs_rehash(record.password_hash)

    await UserAccounts(store, new, tokens).login(email="ada@example.com", password=PASSWORD)

    upgraded = store.by_id(user.user_id)
    assert upgraded is not None and not new.needs_rehash(upgraded.password_hash)
    assert await new.verify(upgraded.password_hash, PASSWORD)
    db.close()
