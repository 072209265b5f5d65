"""The edge Envoy's bootstrap, built from the public RPCs and topology.toml ``[edge]``.

One listener takes REST/JSON (HTTP/1.1 or h2c) and native gRPC. The HTTP filters, in
request order, and why they sit where they do:

1. header_mutation  drops any client-sent ``x-meshmart-user-id``: only the JWT filter
                    may set it, and services trust it.
2. cors             answers preflights for the configured origins. It must see the
                    request before transcoding (it needs a route for the REST path: the
                    ``/api/`` catch-all route gives it one).
   compressor       gzips the storefront's files (HTML, JS, CSS, SVG: by content type,
                    so the API's JSON is untouched); they are direct responses (web.py).
3. buffer           caps request bodies (413 before a service sees them).
4. cache            Envoy's HTTP cache, keyed on the REST URL, stores what a route marks
                    cacheable (the catalog routes) and answers hits with an ``age`` header.
5. grpc_json_transcoder  REST -> gRPC. It rewrites the path to ``/pkg.Service/Method``
                    and Envoy re-picks the route: from here on, REST and native gRPC
                    calls of one RPC are on the same route.
6. jwt_authn        verifies the access token on user-scoped RPCs (rules on gRPC paths,
                    so it protects both faces) and copies ``sub`` to x-meshmart-user-id.
7. local_ratelimit  a token bucket per route and one per user / client address on top
                    (policies in api.py), 429 + retry-after.
8. router           to the edge sidecar's local listener of the service (mTLS beyond).

Errors: a gRPC status from a service, and Envoy's own replies after transcoding (JWT,
rate limit, no upstream: these are gRPC replies because the request is gRPC by then),
pass back through the transcoder, whose ``convert_grpc_status`` turns them into the
HTTP status and a JSON body ``{code, message, details}`` (google.rpc.Status, details
such as BadRequest field violations included). Replies Envoy makes for REST requests
before transcoding (bad JSON, body too large, unknown route, CORS refusal) get the same
JSON shape from ``local_reply_config``. FAILED_PRECONDITION, which Envoy maps to 400, is
answered 409 by a small Lua step after the transcoder, and so is a route timeout
(504, DEADLINE_EXCEEDED, where Envoy would say 503): see _REST_RESPONSE_LUA.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.kit.registration import envoy_tracing
from tools.mesh.edge import web
from tools.mesh.edge.api import RateLimit, RoutePolicy, Rpc
from tools.mesh.edge.settings import EdgeSettings
from tools.mesh.observability import ZIPKIN_PORT

USER_ID_HEADER = "x-meshmart-user-id"
INTERNAL = "edge_internal"  # in-process listener (and its cluster) behind the HTTP cache
JWT_PROVIDER = "meshmart"
JWT_ISSUER = "meshmart"  # services/user/tokens.py: iss and aud are both "meshmart"
JWT_AUDIENCE = "meshmart"

# google.rpc.Code for the HTTP status of a reply Envoy makes itself for a REST request.
GRPC_CODE_FOR_HTTP = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    408: 4,  # DEADLINE_EXCEEDED
    413: 3,  # INVALID_ARGUMENT: the body is too large
    429: 8,  # RESOURCE_EXHAUSTED
    431: 3,  # INVALID_ARGUMENT: headers too large
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}

# Runs on every response after the transcoder (Lua filters see responses in reverse order).
# 1. Envoy maps gRPC FAILED_PRECONDITION (9) to HTTP 400, as Google's API guide does; the
#    shop's contract says 409: the request was fine, the state of the resource is not
#    (an empty cart, an order already cancelled). The converted body starts with the
#    gRPC code (google.rpc.Status prints `code` first), which is how this step knows;
#    only 400 bodies, a few hundred bytes, are read.
# 2. Envoy reports its own route timeout on a transcoded call as gRPC UNAVAILABLE (its
#    gRPC mapping turns HTTP 504 into UNAVAILABLE), which the transcoder makes a 503; a
#    timeout is DEADLINE_EXCEEDED, 504. Known by its exact message, "upstream request
#    timeout" (only 503 bodies, a few dozen bytes, are read).
# 3. REST clients get no gRPC-only headers (grpc-status, grpc-message, ...); native gRPC
#    responses keep them, of course.
_REST_RESPONSE_LUA = """
function envoy_on_response(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if string.sub(content_type, 1, 16) == "application/grpc" then
    return
  end
  headers:remove("grpc-status")
  headers:remove("grpc-message")
  headers:remove("grpc-accept-encoding")
  local status = headers:get(":status")
  if status == "400" then
    local body = handle:body()
    if body ~= nil and string.find(body:getBytes(0, 10), '{"code":9,', 1, true) == 1 then
      -- headers() again: the object taken before body() is no longer valid.
      handle:headers():replace(":status", "409")
    end
  elseif status == "503" then
    local body = handle:body()
    local timeout = '{"code":14,"message":"upstream request timeout"'
    if body ~= nil and body:length() < 512 and
        string.find(body:getBytes(0, body:length()), timeout, 1, true) == 1 then
      local text = string.gsub(body:getBytes(0, body:length()), '^{"code":14,', '{"code":4,')
      body:setBytes(text)
      handle:headers():replace(":status", "504")
    end
  end
end
"""


@dataclass(frozen=True)
class EdgeFiles:
    """Files the config points at (as Envoy should read them: absolute, or relative to
    the directory Envoy runs in)."""

    protoset: str  # meshmart.protoset + google.rpc status/error_details (see descriptors.py)
    jwks: str  # <run>/keys/jwks.json written by `python -m services.user.keys`
    openapi: str  # the OpenAPI document served at /api/openapi.json
    web: str = ""  # the storefront's files served at / (web.py); "": no storefront


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _any(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _header(key: str, value: str, action: str = "OVERWRITE_IF_EXISTS_OR_ADD") -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": action}


def _bucket(limit: RateLimit) -> dict[str, Any]:
    return {"max_tokens": limit.burst, "tokens_per_fill": limit.burst,
            "fill_interval": _duration(limit.window_s)}


def _rate_limit(policy: RoutePolicy) -> dict[str, Any]:
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
              "runtime_key": f"edge.ratelimit.{policy.name}"}
    per_client: dict[str, Any] = {}
    if policy.per_client:
        per_client = {
            # A descriptor entry without a value is a wildcard: one bucket per distinct
            # user id / client address, made on first use (and the least recently used
            # ones dropped beyond max_dynamic_descriptors).
            "descriptors": [{"entries": [{"key": policy.client_key}],
                             "token_bucket": _bucket(policy.per_client)}],
            "max_dynamic_descriptors": 10000,
            # The route's own bucket applies as well (Envoy's default, stated).
            "always_consume_default_token_bucket": True,
        }
    return _any(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        stat_prefix=f"edge_{policy.name}",
        token_bucket=_bucket(policy.rate_limit),
        filter_enabled=always,
        filter_enforced=always,
        **per_client,
        # 429 for REST (and RESOURCE_EXHAUSTED for gRPC) instead of UNAVAILABLE/503,
        # which is what Envoy's gRPC reply for a plain 429 would become.
        rate_limited_as_resource_exhausted=True,
        enable_x_ratelimit_headers="DRAFT_VERSION_03",
        # When the client's next token is there.
        response_headers_to_add=[_header("retry-after", str(policy.retry_after_s))],
    )


def _client_descriptor(policy: RoutePolicy) -> list[dict[str, Any]]:
    """The route's rate_limits: how a request names its client for the local limiter."""
    if policy.per_client is None:
        return []
    if policy.jwt:
        # Set by jwt_authn (which runs before the limiter) from the verified token.
        action = {"request_headers": {"header_name": USER_ID_HEADER, "descriptor_key": "user"}}
    else:
        action = {"remote_address": {}}
    return [{"actions": [action]}]


def _rpc_route(rpc: Rpc) -> dict[str, Any]:
    policy = rpc.policy
    route: dict[str, Any] = {
        "name": rpc.full_name,
        "match": {
            "path": rpc.grpc_path,
            # Only gRPC: a JSON POST straight to /pkg.Service/Method is not transcoded
            # (auto_mapping is off) and must not reach the service.
            "headers": [{"name": "content-type",
                         "string_match": {"prefix": "application/grpc"}}],
        },
        "route": {
            "cluster": rpc.service_name,
            # The whole call. (No max_stream_duration.grpc_timeout_header_max: with it a
            # gRPC request without grpc-timeout, which every transcoded one is, gets no
            # timeout at all. A native client's grpc-timeout still reaches the service.)
            "timeout": _duration(policy.timeout_s),
            **({"rate_limits": limits} if (limits := _client_descriptor(policy)) else {}),
        },
        "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": _rate_limit(policy)},
    }
    if policy.cache_control:
        # Unless the service says otherwise itself.
        route["response_headers_to_add"] = [
            _header("cache-control", policy.cache_control, "ADD_IF_ABSENT")
        ]
    elif policy.jwt:
        # One user's data must never sit in a shared cache.
        route["response_headers_to_add"] = [_header("cache-control", "private, no-store")]
    return route


def _rest_path_regex(http_path: str) -> str:
    """/api/v1/products/{product_id} -> ^/api/v1/products/[^/]+$ (single-segment variables,
    the only kind the contracts use)."""
    parts = re.split(r"(\{[^}]*\})", http_path)
    return "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"


def _cached_rest_route(rpc: Rpc) -> dict[str, Any]:
    """The REST path of a cacheable GET: through Envoy's cache to the cache-fill listener
    (see _internal_connection_manager)."""
    return {
        "name": f"{rpc.full_name}.rest",
        "match": {
            "safe_regex": {"regex": _rest_path_regex(rpc.http_path)},
            "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
        },
        "route": {"cluster": INTERNAL, "timeout": _duration(rpc.policy.timeout_s)},
    }


def _direct_error(status: int, message: str) -> dict[str, Any]:
    """An error Envoy answers itself; local_reply_config gives it the JSON error shape."""
    return {"status": status, "body": {"inline_string": message}}


def _fallback_routes() -> list[dict[str, Any]]:
    """The internal listener's answers for what no RPC route takes."""
    return [
        {
            # A preflight gets here only when the CORS filter did not answer it, i.e. its
            # origin is not allowed.
            "name": "cors-refused",
            "match": {"prefix": "/", "headers": [
                {"name": ":method", "string_match": {"exact": "OPTIONS"}}]},
            "direct_response": _direct_error(403, "CORS: origin not allowed"),
        },
        {
            # REST paths that are not (or not with this method) an RPC's mapping.
            "name": "not-found",
            "match": {"prefix": "/"},
            "direct_response": _direct_error(404, "no such API route"),
        },
    ]


# The storefront's "mesh" page (web/src/pages/mesh.ts): the edge sidecar's own view of
# every service the edge calls, read-only. Two fixed GETs of its Envoy admin (instances
# with their health and outlier ejection; the request, retry and circuit-breaker
# counters), nothing else of the admin, and no Consul token anywhere near the browser.
SIDECAR_ADMIN = "edge_sidecar_admin"
_MESH_VIEW_STATS = (
    r"^cluster\.(failover-target~)?([A-Za-z0-9_-]+\.)?[a-z-]+\.default\..*\.consul\."
    r"(upstream_rq_(total|active|retry)|circuit_breakers\.default\.rq_open)$"
)
MESH_VIEW = {
    "/api/mesh/clusters": "/clusters?format=json",
    "/api/mesh/stats": "/stats?format=json&filter=" + urllib.parse.quote(_MESH_VIEW_STATS, safe=""),
}


def _mesh_view_routes() -> list[dict[str, Any]]:
    return [
        {
            "name": f"mesh-view-{path.rsplit('/', 1)[1]}",
            "match": {"path": path, "headers": [
                {"name": ":method", "string_match": {"exact": "GET"}}]},
            "route": {"cluster": SIDECAR_ADMIN, "prefix_rewrite": admin_path, "timeout": "2s"},
            "response_headers_to_add": [_header("cache-control", "no-store")],
        }
        for path, admin_path in MESH_VIEW.items()
    ]


def _routes(rpcs: Sequence[Rpc], files: EdgeFiles) -> list[dict[str, Any]]:
    routes = [_rpc_route(rpc) for rpc in rpcs]
    routes += [_cached_rest_route(rpc) for rpc in rpcs if rpc.policy.cache_control]
    routes += [
        {
            "name": "openapi",
            "match": {"path": "/api/openapi.json", "headers": [
                {"name": ":method", "string_match": {"exact": "GET"}}]},
            "direct_response": {"status": 200, "body": {"filename": files.openapi}},
            "response_headers_to_add": [
                _header("content-type", "application/json"),
                _header("cache-control", "public, max-age=300"),
            ],
        },
        *(web.routes(files.web) if files.web else []),
        *_mesh_view_routes(),
        {
            # gRPC to a method the edge does not expose (internal RPCs, reflection,
            # health): Envoy answers a gRPC client with UNIMPLEMENTED for a 404.
            "name": "grpc-not-exposed",
            "match": {"prefix": "/", "grpc": {}},
            "direct_response": {"status": 404},
            # Answer at once, not after the client's request stream ends (reflection
            # streams and would wait forever behind the buffer).
            "typed_per_filter_config": {"envoy.filters.http.buffer": _any(
                "envoy.extensions.filters.http.buffer.v3.BufferPerRoute", disabled=True)},
        },
        {
            # Everything else, and the route every REST call has before it is transcoded.
            # It must lead to a cluster: the CORS filter ignores routes without one (a
            # direct response), so the 404 and the CORS refusal are answered by the
            # internal listener (_fallback_routes).
            "name": "rest",
            "match": {"prefix": "/"},
            "route": {"cluster": INTERNAL, "timeout": "2s"},
        },
    ]
    for route in routes:
        if route["name"].endswith(".rest"):
            continue
        # Envoy's cache serves misses itself from the route's cluster, past the
        # transcoder, so it is on only for the cacheable REST routes.
        route["typed_per_filter_config"] = {
            **route.get("typed_per_filter_config", {}),
            "envoy.filters.http.cache": _any("envoy.config.route.v3.FilterConfig", disabled=True),
        }
    return routes


def _cors_policy(settings: EdgeSettings) -> dict[str, Any]:
    return _any(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        allow_origin_string_match=[{"exact": origin} for origin in settings.cors_origins],
        allow_methods="GET, POST, PATCH, DELETE, OPTIONS",
        allow_headers="authorization, content-type, x-request-id",
        expose_headers=(
            "retry-after, x-request-id, age, x-ratelimit-limit, x-ratelimit-remaining, "
            "x-ratelimit-reset"
        ),
        max_age="600",
        # Bearer tokens travel in a header, never in cookies.
        allow_credentials=False,
    )


def _jwt_authn(rpcs: Sequence[Rpc], files: EdgeFiles) -> dict[str, Any]:
    # The rules match gRPC paths, which every call has here (REST ones are transcoded
    # already), so a token protects an RPC on both faces. Paths with no rule need none:
    # public RPCs, and paths no route leads to a service from.
    rules: list[dict[str, Any]] = [
        {"match": {"path": rpc.grpc_path}, "requires": {"provider_name": JWT_PROVIDER}}
        for rpc in rpcs
        if rpc.policy.jwt
    ]
    return _any(
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={
            JWT_PROVIDER: {
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"filename": files.jwks},
                # The token stays at the edge; services get the verified user id only.
                "forward": False,
                "claim_to_headers": [{"header_name": USER_ID_HEADER, "claim_name": "sub"}],
                "clock_skew_seconds": 30,
            }
        },
        rules=rules,
    )


def _local_reply_config() -> dict[str, Any]:
    """JSON ``{code, message, details}`` for Envoy's own replies to REST requests."""

    def body(code: int) -> dict[str, Any]:
        return {
            "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []},
            "content_type": "application/json",
        }

    # Native gRPC requests get gRPC replies (grpc-status), untouched.
    # A REST request that was transcoded has x-envoy-original-path, and Envoy answers it
    # as the HTTP request it was (not as gRPC): those get the JSON shape too.
    not_grpc = {"or_filter": {"filters": [
        {"header_filter": {"header": {
            "name": "content-type", "string_match": {"prefix": "application/grpc"},
            "invert_match": True, "treat_missing_header_as_empty": True}}},
        {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
    ]}}

    def status_is(op: str, status: int) -> dict[str, Any]:
        return {"status_code_filter": {"comparison": {
            "op": op, "value": {"default_value": status, "runtime_key": "edge.local_reply"}}}}

    mappers = []
    for status, code in GRPC_CODE_FOR_HTTP.items():
        mapper: dict[str, Any] = {
            "filter": {"and_filter": {"filters": [status_is("EQ", status), not_grpc]}},
            "body_format_override": body(code),
        }
        if status == 413:
            mapper["body"] = {"inline_string": "request body too large"}
        mappers.append(mapper)
    # Any other error status: UNKNOWN. Successful direct responses (the OpenAPI document)
    # stay as they are.
    mappers.append({
        "filter": {"and_filter": {"filters": [status_is("GE", 400), not_grpc]}},
        "body_format_override": body(2),
    })
    return {"mappers": mappers}


_ACCESS_LOG_FORMAT = {
    "time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "rpc": "%REQ(:PATH)%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS(NUMBER)%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "duration_ms": "%DURATION%",
    "upstream": "%UPSTREAM_HOST%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "user": "%REQ(X-MESHMART-USER-ID)%",
}


def _transcoder(rpcs: Sequence[Rpc], files: EdgeFiles) -> dict[str, Any]:
    return {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": _any(
        "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor=files.protoset,
        services=sorted({rpc.full_service for rpc in rpcs}),
        print_options={
            # Stable shapes for clients: zero values and empty lists are printed.
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": False,
        },
        convert_grpc_status=True,
        request_validation_options={
            # Unknown paths fall through to the JSON 404 route instead.
            "reject_unknown_method": False,
            # A misspelt filter (?pagesize=) is an error, not silently ignored.
            "reject_unknown_query_parameters": True,
        },
        # `?query=red+shoes` as HTML forms send it.
        query_param_unescape_plus=True,
        case_insensitive_enum_parsing=True,
    )}


def _lua() -> dict[str, Any]:
    return {"name": "envoy.filters.http.lua", "typed_config": _any(
        "envoy.extensions.filters.http.lua.v3.Lua",
        default_source_code={"inline_string": _REST_RESPONSE_LUA.strip() + "\n"})}


def _compressor() -> dict[str, Any]:
    """gzip for the storefront's files (by content type: the API's JSON is left alone)."""
    return {"name": "envoy.filters.http.compressor", "typed_config": _any(
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        response_direction_config={"common_config": {
            "content_type": list(web.COMPRESSED_TYPES)}},
        compressor_library={"name": "gzip", "typed_config": _any(
            "envoy.extensions.compression.gzip.compressor.v3.Gzip")},
    )}


def _router() -> dict[str, Any]:
    return {"name": "envoy.filters.http.router", "typed_config": _any(
        "envoy.extensions.filters.http.router.v3.Router", suppress_envoy_headers=True)}


def _connection_manager(
    stat_prefix: str, filters: list[dict[str, Any]], virtual_host: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return _any(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix=stat_prefix,
        codec_type="AUTO",
        **extra,
        local_reply_config=_local_reply_config(),
        route_config={
            "name": stat_prefix,
            # The OpenAPI document is served from a file by a direct response.
            "max_direct_response_body_size_bytes": 1024 * 1024,
            "virtual_hosts": [{"name": "meshmart", "domains": ["*"], **virtual_host}],
        },
        http_filters=filters,
    )


def _zipkin(address: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge's Zipkin tracer and its collector cluster: the very ones the sidecars get
    (services/kit/registration.py), at the mesh's Zipkin (tools/mesh/observability.py).
    No random sampling: the edge traces exactly the requests whose traceparent says
    sampled (the storefront's calls, tests), continuing the browser's trace, and passes
    its span on to its sidecar. Without a Zipkin running the spans are dropped."""
    hatches = envoy_tracing(f"http://{address}:{ZIPKIN_PORT}/api/v2/spans")
    return (json.loads(hatches["envoy_tracing_json"])["http"],
            json.loads(hatches["envoy_extra_static_clusters_json"]))


def _edge_connection_manager(
    settings: EdgeSettings, rpcs: Sequence[Rpc], files: EdgeFiles, tracer: dict[str, Any]
) -> dict[str, Any]:
    filters = [
        {"name": "envoy.filters.http.header_mutation", "typed_config": _any(
            "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            mutations={"request_mutations": [{"remove": USER_ID_HEADER}]})},
        {"name": "envoy.filters.http.cors", "typed_config": _any(
            "envoy.extensions.filters.http.cors.v3.Cors")},
        _compressor(),
        {"name": "envoy.filters.http.buffer", "typed_config": _any(
            "envoy.extensions.filters.http.buffer.v3.Buffer",
            max_request_bytes=settings.max_request_bytes)},
        {"name": "envoy.filters.http.cache", "typed_config": _any(
            "envoy.extensions.filters.http.cache.v3.CacheConfig",
            typed_config=_any(
                "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig"))},
        _lua(),
        _transcoder(rpcs, files),
        {"name": "envoy.filters.http.jwt_authn", "typed_config": _jwt_authn(rpcs, files)},
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": _any(
            "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            stat_prefix="edge")},
        _router(),
    ]
    return _connection_manager(
        "edge",
        filters,
        {
            "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(settings)},
            "routes": _routes(rpcs, files),
        },
        tracing={"provider": tracer, "random_sampling": {"value": 0}},
        use_remote_address=True,
        generate_request_id=True,
        always_set_request_id_in_response=True,
        normalize_path=True,
        merge_slashes=True,
        access_log=[{
            "name": "envoy.access_loggers.stdout",
            "typed_config": _any(
                "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                log_format={"json_format": _ACCESS_LOG_FORMAT}),
        }],
    )


def _internal_connection_manager(rpcs: Sequence[Rpc], files: EdgeFiles) -> dict[str, Any]:
    """The in-process listener behind the edge's cache and its fallback route.

    Envoy's cache filter fetches a miss itself, straight from the route's cluster, past
    the filters after it (the transcoder among them). So the REST routes of cacheable
    RPCs point here: this listener transcodes and calls the service, and the JSON it
    answers is what the cache stores. It also answers the 404s and CORS refusals."""
    cached = [rpc for rpc in rpcs if rpc.policy.cache_control]
    routes = [_rpc_route(rpc) for rpc in cached] + _fallback_routes()
    filters = [
        _lua(),
        _transcoder(cached, files),
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": _any(
            "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            stat_prefix=INTERNAL)},
        _router(),
    ]
    return _connection_manager(INTERNAL, filters, {"routes": routes})


def _cluster(name: str, target: tuple[str, int]) -> dict[str, Any]:
    host, port = target
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        ]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config={"http2_protocol_options": {}}),
        },
        # Limits towards the sidecar's listener; the sidecar applies the mesh's own
        # circuit breakers (consul/config-entries/edge/service-defaults.hcl) beyond it.
        "circuit_breakers": {"thresholds": [{"max_requests": 1024, "max_pending_requests": 1024}]},
    }


def bootstrap(
    settings: EdgeSettings,
    rpcs: Sequence[Rpc],
    targets: Mapping[str, tuple[str, int]],
    address: str,
    files: EdgeFiles,
) -> dict[str, Any]:
    """The whole edge Envoy config. ``targets``: service -> where the edge sends its calls
    (the sidecar's local listener in the mesh, the service itself without one)."""
    missing = sorted({rpc.service_name for rpc in rpcs} - targets.keys())
    if missing:
        raise ValueError(f"no upstream target for {', '.join(missing)}")
    clusters = [_cluster(name, targets[name]) for name in sorted({r.service_name for r in rpcs})]
    tracer, zipkin_cluster = _zipkin(address)
    clusters.append(zipkin_cluster)
    clusters.append({
        "name": SIDECAR_ADMIN,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": SIDECAR_ADMIN, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": address, "port_value": settings.sidecar_admin_port}}}}]}]},
    })
    clusters.append({
        "name": INTERNAL,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": INTERNAL, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"envoy_internal_address": {
                "server_listener_name": INTERNAL}}}}]}]},
    })
    hcm = "envoy.filters.network.http_connection_manager"
    return {
        "node": {"id": "edge-1", "cluster": "edge"},
        "admin": {"address": {"socket_address": {
            "address": address, "port_value": settings.admin_port}}},
        # In-process listeners (no socket): the one behind the cache.
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": _any(
            "envoy.extensions.bootstrap.internal_listener.v3.InternalListener")}],
        "static_resources": {
            "listeners": [
                {
                    "name": "edge",
                    "address": {"socket_address": {
                        "address": address, "port_value": settings.port}},
                    "filter_chains": [{"filters": [{
                        "name": hcm,
                        "typed_config": _edge_connection_manager(settings, rpcs, files, tracer),
                    }]}],
                },
                {
                    "name": INTERNAL,
                    "internal_listener": {},
                    "filter_chains": [{"filters": [{
                        "name": hcm,
                        "typed_config": _internal_connection_manager(rpcs, files),
                    }]}],
                },
            ],
            "clusters": clusters,
        },
    }
