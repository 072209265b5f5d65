# syntax=docker/dockerfile:1
# recommendation v2 (services/recommendation-go): the Go implementation of
# RecommendationService, as a static binary on a slim Debian base, non-root.
#   docker build -f docker/recommendation-go.Dockerfile -t meshmart/recommendation-go:0.1.0 .
# Build context: the repository root (the module replaces meshmart.local/gen/go with
# ../../gen/go, so both folders are copied at the same relative places).
# Settings are the Python service's (MESHMART_HOST, MESHMART_PORT, MESHMART_UPSTREAM_*,
# MESHMART_CONSUL_HTTP_ADDR...), so docker-compose.yml can run it like any instance.

# docker/compose.local.yml replaces both with locally built images of the same roles.
ARG GO_IMAGE=golang:1.26-bookworm
ARG DEBIAN_IMAGE=debian:12-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src/services/recommendation-go
# A CA bundle given as the build secret "ca" is used for the downloads, never stored.
# Modules first: the download layer is reused until a go.mod or go.sum changes.
COPY gen/go/go.mod gen/go/go.sum /src/gen/go/
COPY services/recommendation-go/go.mod services/recommendation-go/go.sum ./
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    go mod download
COPY gen/go/ /src/gen/go/
COPY services/recommendation-go/ ./
# The service, and the standard gRPC health probe for the image's healthcheck in
# docker-compose.yml (no Python here for the one-liner the others use): a `tool` of the
# module (go.mod pins it), so one build compiles grpc-go and the rest they share once
# (a cold build: 63 s of CPU, against 102 s for `go install` of the probe beside it).
# Go's build cache survives between builds (a cache mount, not a layer).
RUN --mount=type=secret,id=ca,required=false --mount=type=cache,target=/root/.cache/go-build \
    if [ -f /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi; \
    CGO_ENABLED=0 go build -trimpath -o /out/ . github.com/grpc-ecosystem/grpc-health-probe

FROM ${DEBIAN_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin meshmart
COPY --from=build /out/recommendation-go /out/grpc-health-probe /usr/local/bin/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/recommendation-go"]
