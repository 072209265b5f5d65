"""What a person sees, in a real browser (Debian's chromium driven by Playwright): the
Consul UI's topology of order with its upstreams and metrics from Prometheus, and the
purchase's trace in Zipkin. Screenshots go to tests.browser.OUTPUT_DIR."""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from harness.wait import TimedOut, until_blocking
from tests.browser import TIMEOUT_MS, chromium, consul_ui_log_in, save
from tests.observability.conftest import Purchase
from tools.mesh.http import get_json
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def ui_token(mesh: MeshPlan) -> str | None:
    """The token the UI is logged in with: the operator's (read-only) on a mesh with ACLs,
    as `up` says; none without."""
    operator = mesh.tokens_dir / "operator.token"
    return operator.read_text().strip() if operator.exists() else None


@pytest.fixture
def page(browser: Browser, mesh: MeshPlan) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    if ui_token(mesh) is not None:
        consul_ui_log_in(context, mesh.consul_url, mesh.tokens_dir / "operator.token")
    try:
        yield context.new_page()
    finally:
        context.close()


# What the UI's Prometheus provider asks for an upstream card of order (Consul 1.14.11,
# agent/uiserver/dist/assets/metrics-providers/prometheus-*.js: fetchER, fetchPercentile
# with type "upstream"), through the agent's metrics proxy.
ORDER_UPSTREAMS = ("user", "cart", "inventory", "payment")
_SELECTOR = ('consul_source_service="order",consul_source_datacenter="dc1",'
             'consul_source_namespace="default",envoy_http_conn_manager_prefix="upstream"')
_BY = "consul_upstream_service,consul_upstream_datacenter,consul_upstream_namespace"
UI_CARD_QUERIES = {
    "ER": (f'sum(rate(envoy_http_downstream_rq_xx{{{_SELECTOR},envoy_response_code_class="5"}}'
           f"[15m])) by ({_BY})/sum(rate(envoy_http_downstream_rq_xx{{{_SELECTOR}}}[15m])) "
           f"by ({_BY})"),
    "P99": (f"histogram_quantile(0.99, sum by(le,{_BY}) "
            f"(rate(envoy_http_downstream_rq_time_bucket{{{_SELECTOR}}}[15m])))"),
}


def ui_card_figures(mesh: MeshPlan) -> dict[str, dict[str, float]]:
    """Card label -> upstream -> the figure the UI's query answers now (NaN: the UI
    shows "-"), asked as the UI asks: the metrics proxy, with the UI's token."""
    figures: dict[str, dict[str, float]] = {}
    for label, promql in UI_CARD_QUERIES.items():
        body = get_json(f"{mesh.consul_url}/v1/internal/ui/metrics-proxy/api/v1/query?"
                        + urllib.parse.urlencode({"query": promql}), token=ui_token(mesh))
        figures[label] = {r["metric"]["consul_upstream_service"]: float(r["value"][1])
                          for r in body["data"]["result"]}
    return figures


def test_the_consul_ui_shows_orders_upstreams_with_metrics_from_prometheus(
    mesh: MeshPlan, observability: Observability, purchase: Purchase, page: Page
) -> None:
    # The UI reads its cards' figures when the page loads. Right after the purchase the
    # error ratio of an upstream is 0/0 (until Prometheus scraped order's sidecar after
    # the calls) and its P99 NaN (until Envoy flushed its histograms, every 5 s, and
    # the next scrape): the UI then shows "-". Load the page once the UI's own queries
    # answer a figure for every upstream the purchase called.
    shown: list[dict[str, dict[str, float]]] = [{}]

    def every_card_has_its_figures() -> bool:
        shown[0] = ui_card_figures(mesh)
        return all(not math.isnan(shown[0][label].get(upstream, math.nan))
                   for label in UI_CARD_QUERIES for upstream in ORDER_UPSTREAMS)

    try:
        until_blocking(every_card_has_its_figures, 90, "a figure in each of order's upstream "
                       "cards through the UI's metrics proxy", step=1)
    except TimedOut as timed_out:
        raise AssertionError(f"{timed_out}; the queries answer {shown[0]}") from None
    page.goto(f"{mesh.consul_url}/ui/dc1/services/order/topology", timeout=TIMEOUT_MS)
    for upstream in ("user", "cart", "inventory", "payment"):
        page.get_by_text(upstream, exact=True).first.wait_for(timeout=TIMEOUT_MS)
    # The metrics of the topology's cards come from Prometheus through Consul's proxy:
    # wait until a figure with its unit is shown (RPS, error %, latency in ms).
    figure = re.compile(r"\d+(\.\d+)?\s*(ms|%|/s|RPS)", re.IGNORECASE)
    page.wait_for_function(
        "re => new RegExp(re, 'i').test(document.body.innerText)",
        arg=figure.pattern, timeout=TIMEOUT_MS,
    )
    shot = save(page, "consul-order-topology")
    text = page.inner_text("body")
    assert figure.search(text), text
    # Each upstream card has its error ratio and p99 (the UI's labels ER and P99).
    for label in ("ER", "P99"):
        assert re.search(rf"\d+(\.\d+)?\s*(%|ms|s)?\s+{label}\b", text), (label, text)
    assert shot.stat().st_size > 10_000


def test_zipkin_shows_the_purchase_trace_with_spans_of_five_services(
    observability: Observability, purchase: Purchase, page: Page
) -> None:
    page.goto(f"{observability.zipkin_url}/zipkin/traces/{purchase.trace_id}",
              timeout=TIMEOUT_MS)
    # The trace's summary (Lens renders only the span rows in view, so the count of
    # services is read from the header, as a person would).
    page.get_by_text("Total Spans").first.wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("order:").first.wait_for(timeout=TIMEOUT_MS)
    shot = save(page, "zipkin-purchase-trace")
    text = page.inner_text("body")
    services = re.search(r"Services\s+(\d+)", text)
    spans = re.search(r"Total Spans\s+(\d+)", text)
    assert services and int(services.group(1)) >= 5, text[:1500]
    assert spans and int(spans.group(1)) >= 10, text[:1500]
    assert purchase.trace_id in text
    # The rows in view name the services on the purchase path, as "<service>: <span>".
    shown = {s for s in ("order", "user", "cart", "inventory", "payment") if f"{s}: " in text}
    assert len(shown) >= 3, text[:1500]
    assert shot.stat().st_size > 10_000
