"""Typed service configuration, read once from the environment.

Every setting is validated up front so a misconfigured process dies at start with a
message naming the variable, instead of failing on the first request. A service's own
settings are a frozen dataclass whose fields say where they come from (``setting``),
read by ``read_settings``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


Settings = TypeVar("Settings", bound=_Dataclass)

PREFIX = "MESHMART_"
UPSTREAM_PREFIX = "MESHMART_UPSTREAM_"
USER_ASSERTERS_VARIABLE = "MESHMART_USER_ASSERTERS"
DATABASE_URL_VARIABLE = "MESHMART_DATABASE_URL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]+)$")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class ServiceConfig:
    """What every service process needs to know about itself and its upstreams."""

    name: str
    port: int
    host: str = "127.0.0.1"
    instance_id: str = ""
    data_dir: Path = Path(".run/data")
    # postgresql://role:password@host:port/database: the service's state lives there
    # instead of a SQLite file in data_dir (services/kit/db.py open_database).
    database_url: str = ""
    run_dir: Path = Path(".run")
    log_level: str = "INFO"
    # Seconds between NOT_SERVING and server.stop(): long enough for health checkers
    # (Consul, Envoy) to notice before the listener goes away.
    drain_seconds: float = 1.0
    upstreams: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The mesh identities (Consul service names) whose x-meshmart-user-id this service
    # believes, told apart by the mTLS peer its sidecar forwards (context.asserted_user):
    # the edge and topology.toml's asserts_users. None without a mesh in front (run-local,
    # in-process tests): the header is then taken as sent.
    user_asserters: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.instance_id:
            object.__setattr__(self, "instance_id", f"{self.name}-{self.port}")
        # Freeze the mapping so a shared config cannot be mutated by one servicer.
        object.__setattr__(self, "upstreams", MappingProxyType(dict(self.upstreams)))
        if self.user_asserters is not None:
            object.__setattr__(self, "user_asserters", frozenset(self.user_asserters))

    @property
    def asserts_users(self) -> bool:
        """Whether this service passes the end user on to what it calls."""
        return self.user_asserters is None or self.name in self.user_asserters

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_env(self) -> dict[str, str]:
        """The ``MESHMART_*`` variables ``load_config`` reads this config back from
        (``load_config(c.name, c.to_env()) == c``): what every launcher hands a service
        process. Settings at their default are left out, so a launcher's environment
        (and docker-compose.yml) names only what it chooses; upstreams come last, by name.
        """
        env = {
            "MESHMART_HOST": self.host,
            "MESHMART_PORT": str(self.port),
            "MESHMART_INSTANCE_ID": self.instance_id,
            "MESHMART_DATA_DIR": str(self.data_dir),
            "MESHMART_RUN_DIR": str(self.run_dir),
        }
        if self.database_url:
            env[DATABASE_URL_VARIABLE] = self.database_url
        if self.log_level != _DEFAULTS.log_level:
            env["MESHMART_LOG_LEVEL"] = self.log_level
        if self.drain_seconds != _DEFAULTS.drain_seconds:
            env["MESHMART_DRAIN_SECONDS"] = repr(self.drain_seconds)
        if self.user_asserters is not None:
            env[USER_ASSERTERS_VARIABLE] = ",".join(sorted(self.user_asserters))
        for name in sorted(self.upstreams):
            env[upstream_variable(name)] = self.upstreams[name]
        return env

    def upstream(self, name: str) -> str:
        """The gRPC target for upstream ``name`` (e.g. "127.0.0.1:7110")."""
        try:
            return self.upstreams[name]
        except KeyError:
            raise ConfigError(
                f"{upstream_variable(name)} is required (host:port of the {name} upstream)"
            ) from None


_DEFAULTS = ServiceConfig(name="defaults", port=1)
_UPSTREAM_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def upstream_variable(name: str) -> str:
    """ "recommendation-go" -> "MESHMART_UPSTREAM_RECOMMENDATION_GO" (``load_config``
    reads it back as "recommendation-go": lower case, "_" -> "-")."""
    if _UPSTREAM_NAME.match(name) is None:
        # Upper case or "_" would not survive the way back through load_config.
        raise ConfigError(f"upstream name must be lower-case words joined by '-', got {name!r}")
    return UPSTREAM_PREFIX + name.upper().replace("-", "_")


def load_config(name: str, env: Mapping[str, str] | None = None) -> ServiceConfig:
    """Build the ServiceConfig of service ``name`` from ``env`` (default: os.environ)."""
    source = os.environ if env is None else env
    port = env_int("MESHMART_PORT", None, minimum=1, maximum=65535, env=source)
    log_level = env_str("MESHMART_LOG_LEVEL", "INFO", env=source).upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"MESHMART_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
        )
    return ServiceConfig(
        name=name,
        host=env_str("MESHMART_HOST", "127.0.0.1", env=source),
        port=port,
        instance_id=env_str("MESHMART_INSTANCE_ID", f"{name}-{port}", env=source),
        data_dir=Path(env_str("MESHMART_DATA_DIR", ".run/data", env=source)),
        database_url=read_database_url(source),
        run_dir=Path(env_str("MESHMART_RUN_DIR", ".run", env=source)),
        log_level=log_level,
        drain_seconds=env_float("MESHMART_DRAIN_SECONDS", 1.0, minimum=0.0, env=source),
        upstreams=_read_upstreams(source),
        user_asserters=_read_asserters(source),
    )


def read_database_url(env: Mapping[str, str]) -> str:
    """MESHMART_DATABASE_URL, checked ("" when unset: SQLite); also for the tools that read
    a service's state where the service keeps it (services/analytics/rebuild.py)."""
    raw = _lookup(DATABASE_URL_VARIABLE, env)
    if raw is None:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(
            f"{DATABASE_URL_VARIABLE} must be postgresql://role:password@host:port/database"
            f" (unset: a SQLite file in MESHMART_DATA_DIR), got scheme {parts.scheme!r}"
        )
    if not parts.path.strip("/"):
        raise ConfigError(f"{DATABASE_URL_VARIABLE} must name the database (…/database)")
    return raw


def _read_asserters(env: Mapping[str, str]) -> frozenset[str] | None:
    raw = _lookup(USER_ASSERTERS_VARIABLE, env)
    if raw is None:
        return None
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    bad = sorted(n for n in names if _UPSTREAM_NAME.match(n) is None)
    if not names or bad:
        raise ConfigError(
            f"{USER_ASSERTERS_VARIABLE} must be Consul service names joined by ',', got {raw!r}"
        )
    return names


def _read_upstreams(env: Mapping[str, str]) -> dict[str, str]:
    upstreams: dict[str, str] = {}
    for key, raw in env.items():
        if not key.startswith(UPSTREAM_PREFIX) or key == UPSTREAM_PREFIX:
            continue
        value = raw.strip()
        match = _HOST_PORT.match(value)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise ConfigError(f"{key} must be host:port with a port 1-65535, got {raw!r}")
        upstreams[key[len(UPSTREAM_PREFIX) :].lower().replace("_", "-")] = value
    return upstreams


def _lookup(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    # An empty variable is treated as unset: `FOO= cmd` is a common way to clear one.
    return value.strip() if value is not None and value.strip() else None


def env_str(name: str, default: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """A string setting; required when ``default`` is None."""
    value = _lookup(name, env)
    if value is not None:
        return value
    if default is None:
        raise ConfigError(f"{name} is required")
    return default


def env_int(
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """An integer setting within [minimum, maximum]; required when ``default`` is None."""
    raw = _lookup(name, env)
    if raw is None:
        if default is None:
            raise ConfigError(f"{name} is required ({_int_shape(name, minimum, maximum)})")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{_int_shape(name, minimum, maximum)}, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{_int_shape(name, minimum, maximum)}, got {raw!r}")
    return value


def _int_shape(name: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None and name.endswith("_PORT"):
        return f"{name} must be an integer port {minimum}-{maximum}"
    if minimum is not None and maximum is not None:
        return f"{name} must be an integer {minimum}-{maximum}"
    if minimum is not None:
        return f"{name} must be an integer >= {minimum}"
    if maximum is not None:
        return f"{name} must be an integer <= {maximum}"
    return f"{name} must be an integer"


def env_float(
    name: str,
    default: float | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    """A float setting within [minimum, maximum]; required when ``default`` is None."""
    raw = _lookup(name, env)
    if raw is None:
        if default is None:
            raise ConfigError(f"{name} is required (a number)")
        return default
    bounds = f" in [{minimum}, {maximum}]" if minimum is not None or maximum is not None else ""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number{bounds}, got {raw!r}") from None
    if (
        value != value  # NaN passes every comparison below, so reject it explicitly
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise ConfigError(f"{name} must be a number{bounds}, got {raw!r}")
    return value


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off."""
    raw = _lookup(name, env)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_ms(
    name: str,
    default_ms: int,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    """A duration set in whole milliseconds (``..._MS``), in seconds."""
    return env_int(name, default_ms, minimum=minimum, maximum=maximum, env=env) / 1000


_SETTING = "meshmart.setting"


@dataclass(frozen=True)
class _Setting:
    variable: str
    minimum: float | None
    maximum: float | None
    in_ms: bool


def setting(
    variable: str,
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    in_ms: bool = False,
) -> Any:
    """A field of a settings dataclass that ``read_settings`` reads from ``variable``,
    typed by its default (bool, int, float or str) and within [minimum, maximum].
    ``in_ms``: the variable holds whole milliseconds (the bounds too), the field seconds."""
    return field(default=default, metadata={_SETTING: _Setting(variable, minimum, maximum, in_ms)})


def read_settings(
    cls: type[Settings], env: Mapping[str, str] | None = None, **given: Any
) -> Settings:
    """An instance of the settings dataclass ``cls``: each ``setting`` field read from its
    variable in ``env`` (default: os.environ), ``given`` as given, the rest at their
    defaults."""
    values = dict(given)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_SETTING)
        if spec is not None and f.name not in values:
            values[f.name] = _read(spec, f.default, env)
    return cls(**values)


def _read(spec: _Setting, default: Any, env: Mapping[str, str] | None) -> Any:
    name, low, high = spec.variable, spec.minimum, spec.maximum
    if spec.in_ms:
        return env_ms(name, round(default * 1000), minimum=1 if low is None else int(low),
                      maximum=None if high is None else int(high), env=env)
    if isinstance(default, bool):
        return env_bool(name, default, env=env)
    if isinstance(default, int):
        return env_int(name, default, minimum=None if low is None else int(low),
                       maximum=None if high is None else int(high), env=env)
    if isinstance(default, float):
        return env_float(name, default, minimum=low, maximum=high, env=env)
    return env_str(name, default, env=env)
