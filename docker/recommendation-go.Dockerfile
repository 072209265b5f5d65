# syntax=docker/dockerfile:1
# recommendation v2 (services/recommendation-go): the Go implementation of
# RecommendationService, as a static binary on a slim Debian base, non-root.
#   docker build -f docker/recommendation-go.Dockerfile -t meshmart/recommendation-go:0.1.0 .
# Build context: the repository root (the module replaces meshmart.local/gen/go with
# ../../gen/go, so both folders are copied at the same relative places).
# Settings are the Python service's (MESHMART_HOST, MESHMART_PORT, MESHMART_UPSTREAM_*,
# MESHMART_CONSUL_HTTP_ADDR...), so docker-compose.yml can run it like any instance.

FROM golang:1.26-bookworm AS build
WORKDIR /src/services/recommendation-go
# Modules first: the download layer is reused until go.mod/go.sum change.
COPY gen/go/ /src/gen/go/
COPY services/recommendation-go/go.mod services/recommendation-go/go.sum ./
RUN go mod download
COPY services/recommendation-go/ ./
# The service, and the standard gRPC health probe (pinned) for the image's healthcheck
# in docker-compose.yml: the image has no Python for the one-liner the others use.
RUN CGO_ENABLED=0 go build -trimpath -o /out/recommendation-go . \
    && CGO_ENABLED=0 GOBIN=/out go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62

FROM debian:12-slim AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin meshmart
COPY --from=build /out/recommendation-go /out/grpc-health-probe /usr/local/bin/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/recommendation-go"]
