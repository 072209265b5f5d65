"""The edge gateway: an Envoy that serves meshmart's public API as REST/JSON and gRPC.

- api.py          which RPCs are public (the protos' google.api.http rules) and each one's
                  route policy: JWT, timeout, rate-limit bucket, caching
- settings.py     topology.toml [edge]: ports, browser origins, body limit
- config.py       the Envoy config (filters, routes, error mapping) built from the two;
                  also the edge's Zipkin tracer and the mesh view's read-only admin routes
- descriptors.py  the descriptor set the transcoder loads (meshmart + google.rpc details)
- openapi.py      the OpenAPI document served at /api/openapi.json
- web.py          the storefront (web/dist) served at / by direct responses, cache headers
- mesh.py         the edge in a mesh run: files, programs, Consul registration, readiness
- __main__.py     `python -m tools.mesh.edge render|check|run`
"""
