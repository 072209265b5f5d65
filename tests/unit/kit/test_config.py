"""Configuration is typed, read once, and fails fast naming the bad setting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.kit.config import (
    ConfigError,
    ServiceConfig,
    env_float,
    env_int,
    env_ms,
    env_str,
    load_config,
    read_settings,
    setting,
)
from tests.unit.kit.processes import start_module


def test_defaults_and_upstreams() -> None:
    config = load_config(
        "cart",
        {"MESHMART_PORT": "7130", "MESHMART_UPSTREAM_CATALOG": "127.0.0.1:7110"},
    )
    assert (config.host, config.port, config.address) == ("127.0.0.1", 7130, "127.0.0.1:7130")
    assert config.instance_id == "cart-7130"
    assert config.data_dir == Path(".run/data")
    assert config.run_dir == Path(".run")
    assert config.database_url == ""  # SQLite, in data_dir
    assert config.upstream("catalog") == "127.0.0.1:7110"


@pytest.mark.parametrize(
    "config",
    [
        ServiceConfig(
            name="storefront",
            port=7190,
            host="10.89.0.9",
            instance_id="storefront-2",
            data_dir=Path("/var/lib/meshmart/data"),
            run_dir=Path("/var/lib/meshmart/run"),
            log_level="DEBUG",
            drain_seconds=0.25,
            upstreams={"recommendation-go": "127.0.0.1:30505", "order": "127.0.0.1:30501"},
            user_asserters=frozenset({"edge", "storefront"}),
            database_url="postgresql://storefront:secret@10.89.0.3:5432/storefront",
        ),
        ServiceConfig(name="catalog", port=7110),  # every default
    ],
    ids=["every-setting-and-a-dashed-upstream", "defaults"],
)
def test_to_env_is_what_load_config_reads_back(config: ServiceConfig) -> None:
    env = config.to_env()
    assert load_config(config.name, env) == config
    if config.upstreams:
        assert env["MESHMART_UPSTREAM_RECOMMENDATION_GO"] == "127.0.0.1:30505"


def test_a_bad_list_of_user_asserters_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="MESHMART_USER_ASSERTERS"):
        load_config("cart", {"MESHMART_PORT": "7130", "MESHMART_USER_ASSERTERS": "edge,Bad_Name"})


def test_to_env_refuses_an_upstream_name_load_config_would_read_back_differently() -> None:
    config = ServiceConfig(name="cart", port=7130, upstreams={"big_catalog": "127.0.0.1:1"})
    with pytest.raises(ConfigError, match="big_catalog"):
        config.to_env()


def test_missing_upstream_names_its_variable() -> None:
    config = load_config("cart", {"MESHMART_PORT": "7130"})
    with pytest.raises(ConfigError, match="MESHMART_UPSTREAM_CATALOG"):
        config.upstream("catalog")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MESHMART_PORT is required"),
        ({"MESHMART_PORT": "abc"}, "MESHMART_PORT must be an integer port 1-65535, got 'abc'"),
        ({"MESHMART_PORT": "70000"}, "MESHMART_PORT must be an integer port 1-65535"),
        ({"MESHMART_PORT": "1", "MESHMART_LOG_LEVEL": "loud"}, "MESHMART_LOG_LEVEL"),
        ({"MESHMART_PORT": "1", "MESHMART_DRAIN_SECONDS": "-1"}, "MESHMART_DRAIN_SECONDS"),
        ({"MESHMART_PORT": "1", "MESHMART_UPSTREAM_USER": "nohost"}, "MESHMART_UPSTREAM_USER"),
        (
            {"MESHMART_PORT": "1", "MESHMART_DATABASE_URL": "mysql://u:p@h:3306/db"},
            "MESHMART_DATABASE_URL must be postgresql://",
        ),
        (
            {"MESHMART_PORT": "1", "MESHMART_DATABASE_URL": "postgresql://u:p@h:5432/"},
            "MESHMART_DATABASE_URL must name the database",
        ),
    ],
)
def test_bad_setting_raises_config_error_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("svc", env)


def test_service_specific_helpers() -> None:
    env = {"A": "x", "B": "5", "C": "0.25", "BAD": "five"}
    assert env_str("A", env=env) == "x"
    assert env_str("MISSING", "d", env=env) == "d"
    assert env_int("B", 1, minimum=1, maximum=9, env=env) == 5
    assert env_float("C", 1.0, env=env) == 0.25
    with pytest.raises(ConfigError, match="BAD must be an integer"):
        env_int("BAD", 1, env=env)
    with pytest.raises(ConfigError, match="B must be an integer 6-9"):
        env_int("B", 1, minimum=6, maximum=9, env=env)
    with pytest.raises(ConfigError, match="MISSING is required"):
        env_str("MISSING", env=env)


@dataclass(frozen=True)
class ExampleSettings:
    timeout_seconds: float = setting("X_TIMEOUT_SECONDS", 2.0, minimum=0.05, maximum=60.0)
    budget_seconds: float = setting("X_BUDGET_MS", 0.4, in_ms=True, maximum=60_000)
    retries: int = setting("X_RETRIES", 3, minimum=0)
    strict: bool = setting("X_STRICT", False)
    name: str = setting("X_NAME", "shop")
    not_from_the_environment: str = "kept"


def test_settings_declared_on_their_fields_are_read_typed_and_default_once() -> None:
    assert read_settings(ExampleSettings, {}) == ExampleSettings()
    read = read_settings(
        ExampleSettings,
        {"X_TIMEOUT_SECONDS": "0.5", "X_BUDGET_MS": "250", "X_RETRIES": "0",
         "X_STRICT": "yes", "X_NAME": "mall"},
        not_from_the_environment="given",
    )
    assert read == ExampleSettings(0.5, 0.25, 0, True, "mall", "given")
    assert env_ms("X_BUDGET_MS", 400, env={}) == 0.4


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"X_TIMEOUT_SECONDS": "90"}, r"X_TIMEOUT_SECONDS must be a number in \[0.05, 60.0\]"),
        ({"X_BUDGET_MS": "0"}, "X_BUDGET_MS must be an integer 1-60000"),
        ({"X_RETRIES": "-1"}, "X_RETRIES must be an integer >= 0"),
        ({"X_STRICT": "maybe"}, "X_STRICT must be a boolean"),
    ],
)
def test_a_bad_declared_setting_raises_config_error_naming_it(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read_settings(ExampleSettings, env)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "MESHMART_PORT"),
        ({"MESHMART_PORT": "abc"}, "MESHMART_PORT"),
        ({"MESHMART_PORT": "7999", "KITTEST_GRACE_SECONDS": "soon"}, "KITTEST_GRACE_SECONDS"),
        ({"MESHMART_PORT": "7999", "MESHMART_EVENT_LOOP": "trio"}, "MESHMART_EVENT_LOOP"),
    ],
)
async def test_entry_point_exits_2_naming_the_setting(env: dict[str, str], named: str) -> None:
    server = await start_module("tests.unit.kit.echo_server", env)
    try:
        code = await server.finish()
    finally:
        server.kill()
    assert code == 2, server.log()
    [record] = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert record["event"] == "config.invalid"
    assert named in record["error"]
    assert "Traceback" not in server.log()
