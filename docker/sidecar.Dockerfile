# syntax=docker/dockerfile:1
# The sidecar image: the official Envoy plus the consul binary, so that the container
# runs `consul connect envoy -sidecar-for <instance>` exactly like `make up` does. The
# Envoy image has no consul; the binary is copied from the official Consul image of the
# version tools/go/consul builds (a static Go binary, it runs on Envoy's Ubuntu base).
# docker-compose.yml builds it (context: docker/) and runs one per service instance in
# that instance's network namespace.

# docker/compose.local.yml replaces both with locally built images of the same roles.
ARG CONSUL_IMAGE=hashicorp/consul:1.14.11
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.40.0

FROM ${CONSUL_IMAGE} AS consul

FROM ${ENVOY_IMAGE}
COPY --from=consul /bin/consul /usr/local/bin/consul
COPY sidecar-entrypoint.sh /usr/local/bin/sidecar-entrypoint
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin meshmart
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/sidecar-entrypoint"]
