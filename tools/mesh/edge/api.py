"""The public API the edge serves: every RPC with a ``google.api.http`` rule, and its policy.

The descriptor set `make proto` writes is the only source of what is public: an RPC
with an http rule is public, one without is internal (tests/unit/test_contracts.py
holds the protos to that). Each public RPC gets one route at the edge, matched on its
gRPC path, which serves both faces: a REST call is transcoded to that path before the
route is chosen, and a native gRPC call arrives on it. The route's policy (JWT or not,
timeout, rate-limit bucket, caching) therefore applies to both faces alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

from tools.mesh.topology import ROOT

PROTOSET = ROOT / "gen" / "descriptors" / "meshmart.protoset"


@dataclass(frozen=True)
class RateLimit:
    """A token bucket of ``burst`` tokens, refilled at ``burst`` per ``window_s`` (Envoy
    refills continuously: one token every window_s / burst seconds)."""

    burst: int
    window_s: int

    @property
    def retry_after_s(self) -> int:
        """Seconds until the next token, rounded up: what a 429's retry-after says."""
        return max(1, -(-self.window_s // self.burst))


@dataclass(frozen=True)
class RoutePolicy:
    name: str  # the route class, also the rate-limit stat prefix
    jwt: bool  # a valid access token is required; its `sub` becomes x-meshmart-user-id
    timeout_s: float  # the whole call at the edge, retries of the edge's sidecar included
    # One bucket for the route, shared by every client: protects the service behind it.
    rate_limit: RateLimit
    # One bucket per client on top: per user (the token's `sub`) on user-scoped routes,
    # per client address on public ones. So one noisy client cannot lock everyone out.
    per_client: RateLimit | None = None
    # Cache-Control for successful responses (only for data that is the same for everyone).
    cache_control: str | None = None

    @property
    def client_key(self) -> str:
        """What a per-client bucket is keyed on."""
        return "user" if self.jwt else "remote_address"

    @property
    def retry_after_s(self) -> int:
        """What a 429 of this route says: the client's own bucket is what a client trips."""
        return (self.per_client or self.rate_limit).retry_after_s


# Route classes; tighter on login and place-order. Envoy refills continuously, so
# RateLimit(10, 10) is "a burst of 10, then one per second".
SIGNUP = RoutePolicy("signup", jwt=False, timeout_s=5.0, rate_limit=RateLimit(50, 1),
                     per_client=RateLimit(10, 10))
# Every login costs an argon2 hash (~50 ms of CPU) and invites password guessing.
LOGIN = RoutePolicy("login", jwt=False, timeout_s=5.0, rate_limit=RateLimit(50, 1),
                    per_client=RateLimit(10, 10))
# Products are the same for everyone and change rarely: cacheable for 30 s, at the edge
# (Envoy's HTTP cache) and in browsers. The bucket is wide: reads are cheap.
CATALOG = RoutePolicy(
    "catalog", jwt=False, timeout_s=2.0, rate_limit=RateLimit(5000, 1),
    cache_control="public, max-age=30",
)
STOCK = RoutePolicy("stock", jwt=False, timeout_s=2.0, rate_limit=RateLimit(2000, 1))
USER_READ = RoutePolicy("user_read", jwt=True, timeout_s=3.0, rate_limit=RateLimit(500, 1),
                        per_client=RateLimit(50, 1))
USER_WRITE = RoutePolicy("user_write", jwt=True, timeout_s=3.0, rate_limit=RateLimit(200, 1),
                         per_client=RateLimit(20, 1))
# The dashboard fans out in parallel with its own per-call deadlines (partial results).
DASHBOARD = RoutePolicy("dashboard", jwt=True, timeout_s=5.0, rate_limit=RateLimit(200, 1),
                        per_client=RateLimit(10, 1))
# A saga per call (reserve, charge, commit), and a burst of orders is a bot.
PLACE_ORDER = RoutePolicy("place_order", jwt=True, timeout_s=10.0, rate_limit=RateLimit(50, 1),
                          per_client=RateLimit(5, 10))

# RPCs that are not user-scoped and so need no token. Everything else needs one: a new
# public RPC is protected until someone decides otherwise here.
POLICIES: dict[str, RoutePolicy] = {
    "meshmart.user.v1.UserService.Register": SIGNUP,
    "meshmart.user.v1.UserService.Login": LOGIN,
    "meshmart.catalog.v1.CatalogService.ListProducts": CATALOG,
    "meshmart.catalog.v1.CatalogService.GetProduct": CATALOG,
    "meshmart.catalog.v1.CatalogService.SearchProducts": CATALOG,
    "meshmart.inventory.v1.InventoryService.GetStock": STOCK,
    "meshmart.order.v1.OrderService.PlaceOrder": PLACE_ORDER,
    "meshmart.storefront.v1.StorefrontService.GetDashboard": DASHBOARD,
}

# A run's own setting for PlaceOrder's shared bucket, in orders per second (bench/
# place_order.py sets it, so that the benchmark measures the shop, not this guard). Unset,
# the edge runs with PLACE_ORDER's. The per-user bucket stays either way.
PLACE_ORDER_RATE_SETTING = "MESHMART_EDGE_PLACE_ORDER_RATE"


def policies_from_env(environ: Mapping[str, str]) -> dict[str, RoutePolicy]:
    """POLICIES, with PlaceOrder's shared bucket from PLACE_ORDER_RATE_SETTING when it is
    set; ValueError naming the setting when it is not a whole number of at least 1."""
    raw = environ.get(PLACE_ORDER_RATE_SETTING, "").strip()
    if not raw:
        return dict(POLICIES)
    try:
        rate = int(raw)
    except ValueError:
        rate = 0
    if rate < 1:
        raise ValueError(f"{PLACE_ORDER_RATE_SETTING}={raw!r}: must be a whole number of "
                         f"orders per second, at least 1 (unset: {place_order_rate()}/s)")
    policies = dict(POLICIES)
    for name, policy in POLICIES.items():
        if policy is PLACE_ORDER:
            policies[name] = replace(PLACE_ORDER, rate_limit=RateLimit(rate, 1))
    return policies


def place_order_rate(policies: Mapping[str, RoutePolicy] = POLICIES) -> float:
    """PlaceOrder's shared bucket in orders per second, under ``policies``."""
    limit = policies["meshmart.order.v1.OrderService.PlaceOrder"].rate_limit
    return limit.burst / limit.window_s


@dataclass(frozen=True)
class Rpc:
    """One public RPC and its REST mapping."""

    package: str  # "meshmart.catalog.v1"
    service: str  # "CatalogService"
    method: str  # "GetProduct"
    verb: str  # "get", "post", "patch", "delete"
    http_path: str  # "/api/v1/products/{product_id}"
    # The run's policies (policies_from_env), POLICIES unless a run set its own.
    policies: Mapping[str, RoutePolicy] = field(
        default_factory=lambda: POLICIES, compare=False, repr=False
    )

    @property
    def service_name(self) -> str:
        """The topology name of the service that implements it ("catalog")."""
        return self.package.split(".")[1]

    @property
    def full_service(self) -> str:
        return f"{self.package}.{self.service}"

    @property
    def full_name(self) -> str:
        return f"{self.full_service}.{self.method}"

    @property
    def grpc_path(self) -> str:
        """The method's HTTP/2 :path, as a gRPC client sends it."""
        return f"/{self.full_service}/{self.method}"

    @property
    def policy(self) -> RoutePolicy:
        default = USER_READ if self.verb == "get" else USER_WRITE
        return self.policies.get(self.full_name, default)


def load_descriptor_set(path: Path = PROTOSET) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def public_rpcs(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    services: Iterable[str] | None = None,
    *,
    policies: Mapping[str, RoutePolicy] = POLICIES,
) -> list[Rpc]:
    """Every RPC with an http rule, of the given topology services (all when None), each
    under ``policies``."""
    wanted = set(services) if services is not None else None
    rpcs = []
    for file in descriptor_set.file:
        if not file.package.startswith("meshmart."):
            continue
        for service in file.service:
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None or verb == "custom":
                    continue
                rpc = Rpc(file.package, service.name, method.name, verb, getattr(rule, verb),
                          policies)
                if wanted is None or rpc.service_name in wanted:
                    rpcs.append(rpc)
    return sorted(rpcs, key=lambda r: r.grpc_path)
