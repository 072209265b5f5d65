"""What a person sees, in a real browser (Debian's chromium driven by Playwright): the
Consul UI's topology of order with its upstreams and metrics from Prometheus, and the
purchase's trace in Zipkin. Screenshots go to tests.browser.OUTPUT_DIR."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import TIMEOUT_MS, chromium, consul_ui_log_in, save
from tests.observability.conftest import Purchase
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan

pytestmark = pytest.mark.mesh

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, mesh: MeshPlan) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    operator = mesh.tokens_dir / "operator.token"
    if operator.exists():  # a mesh with ACLs: the UI logged in read-only, as `up` says
        consul_ui_log_in(context, mesh.consul_url, operator)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_consul_ui_shows_orders_upstreams_with_metrics_from_prometheus(
    mesh: MeshPlan, observability: Observability, purchase: Purchase, page: Page
) -> None:
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
