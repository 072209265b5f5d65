"""The storefront (web/) in a real browser: Debian's chromium driven by Playwright, against
the session's mesh, through the edge at / (tools/mesh/edge/web.py).

A person registers, searches, fills a cart and checks out with the test cards; sees a
decline and a rejected field said in words; sees which recommendation release answers
(the canary at 100 %); follows a call's trace into Zipkin; and sees the dashboard say
it is degraded while every recommendation instance is down, and recover. Axe-core
(web/node_modules, from npm) checks the main pages. Screenshots and measurements go to
tests.browser.OUTPUT_DIR / "web".
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from harness.mesh import health_of
from harness.wait import until
from tests.browser import OUTPUT_DIR, TIMEOUT_MS, chromium, save
from tests.mesh.test_canary import COMMITTED_SPLIT, set_split
from tools.mesh import canary
from tools.mesh.edge import web
from tools.mesh.edge.mesh import Edge
from tools.mesh.observability import Observability
from tools.mesh.plan import MeshPlan
from tools.mesh.supervisor import Supervisor

pytestmark = pytest.mark.mesh

OUT = OUTPUT_DIR / "web"
PLACE_ORDERS = Path(__file__).with_name("place_orders.js")
AXE = web.WEB / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ACCEPTED, DECLINED = "4242424242424242", "4000000000000002"
RECOMMENDATION = "recommendation"
# What a page may take to show a change: a call the mesh retries inside its timeout (the
# dashboard's 5 s) and Playwright's own polling; not a speed goal.
EXPECT_TIMEOUT_MS = 30_000
PLAYWRIGHT_EXPECT_DEFAULT_MS = 5_000


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """This module's expect() waits up to EXPECT_TIMEOUT_MS (the setting is global to
    Playwright, so it is put back for the other browser tests)."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    try:
        yield
    finally:
        expect.set_options(timeout=PLAYWRIGHT_EXPECT_DEFAULT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shop_url(mesh: MeshPlan) -> str:
    built = (web.DIST / "index.html").exists()
    assert built, "web/dist is missing: `make setup` builds the storefront"
    return f"{Edge(mesh).url}/"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext, shop_url: str) -> Page:
    page = context.new_page()
    page.goto(shop_url)
    expect(page.get_by_test_id("products").locator("li").first).to_be_visible()
    return page


# --- what a person does -------------------------------------------------------------------
def nav(page: Page, name: str | re.Pattern[str]) -> Locator:
    """A link of the header's navigation (the footer's trace links name calls too)."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


def register(page: Page) -> str:
    """Create an account from the header's link; the shop logs in and shows the dashboard."""
    email = f"web-{uuid.uuid4().hex[:12]}@example.com"
    nav(page, "Register").click()
    page.get_by_label("Full name").fill("Ada Browser")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Ada Browser")
    return email


def search_and_add(page: Page, query: str, count: int) -> list[str]:
    """Search the catalog and add the first ``count`` results; their names."""
    nav(page, "Catalog").click()
    page.get_by_label("Search products").fill(query)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Search: “{query}”")
    tiles = page.get_by_test_id("products").locator("li")
    expect(tiles.first).to_be_visible()
    assert tiles.count() >= count, page.inner_text("main")
    names = []
    for i in range(count):
        tile = tiles.nth(i)
        name = tile.locator(".name").inner_text()
        tile.get_by_role("button", name=f"Add {name} to cart").click()
        expect(tile.get_by_role("status")).to_contain_text(f"Added {name} to your cart")
        names.append(name)
    return names


def check_out(page: Page, card: str, cvc: str = "123") -> None:
    nav(page, re.compile(r"^Cart")).click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_label("Full name").fill("Ada Buyer")
    page.get_by_label("Address", exact=True).fill("1 Mesh Street")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("Postal code").fill("10115")
    page.get_by_label("Country code").fill("DE")
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Security code (CVC)").fill(cvc)
    page.get_by_role("button", name="Place order").click()


def order_states(page: Page) -> list[str]:
    """The state of each order in the history, newest first."""
    nav(page, "Orders").click()
    table = page.get_by_test_id("orders")
    expect(table.or_(page.get_by_text("No orders yet."))).to_be_visible()
    return [s.strip() for s in table.locator("tbody .state").all_inner_texts()]


def on_the_dashboard(page: Page, shows: Callable[[Page], bool], within_s: float = 60) -> None:
    """Open the dashboard again (as a person would reload it) until it shows something."""
    deadline = time.monotonic() + within_s
    while True:
        shown = page.locator("main h1").element_handle()
        nav(page, "Dashboard").click()
        if shown is not None:  # the page shown before is replaced by a fresh load
            page.wait_for_function("old => !old.isConnected", arg=shown)
        expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
        if shows(page):
            return
        assert time.monotonic() < deadline, page.inner_text("main")
        page.wait_for_timeout(500)  # a person's pause between reloads (the poll's step)


def in_thread(coroutine: Any) -> Any:
    """Run a coroutine of the mesh tests' helpers (Playwright's sync API owns this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# --- the tests ----------------------------------------------------------------------------
def test_a_whole_purchase_register_search_two_products_check_out_confirmed(page: Page) -> None:
    save(page, "catalog", OUT)
    register(page)
    first, second = search_and_add(page, "beans", 2)
    # One more from the product page, then changed and removed again in the cart.
    nav(page, "Catalog").click()
    page.get_by_role("navigation", name="Categories").get_by_role("link", name="books").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Category: books")
    page.get_by_test_id("products").locator("li .tile-link").first.click()
    expect(page.get_by_test_id("stock")).to_contain_text("available")
    expect(page.get_by_test_id("price")).to_contain_text("€")
    extra = page.get_by_role("heading", level=1).inner_text()
    save(page, "product", OUT)
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("main").get_by_role("status")).to_contain_text(f"Added {extra}")

    nav(page, re.compile(r"^Cart")).click()
    quantity = page.get_by_label(f"Quantity of {first}")
    quantity.fill("2")
    quantity.press("Tab")  # the change is sent when the field is left
    row = page.locator("tr", has=page.get_by_role("rowheader", name=first))
    expect(page.get_by_role("status").filter(has_text="Cart updated")).to_be_visible()
    expect(row.get_by_label(f"Quantity of {first}")).to_have_value("2")
    page.get_by_role("button", name=f"Remove {extra}").click()
    expect(page.get_by_role("rowheader", name=extra)).to_have_count(0)
    names = page.locator("tbody th").all_inner_texts()
    assert sorted(names) == sorted([first, second])
    expect(nav(page, re.compile(r"^Cart"))).to_have_text("Cart (3)")
    save(page, "cart", OUT)

    check_out(page, ACCEPTED)
    expect(page.get_by_role("status").filter(has_text="is CONFIRMED")).to_be_visible()
    save(page, "orders", OUT)
    assert order_states(page) == ["CONFIRMED"]
    row = page.get_by_test_id("orders").locator("tbody tr")
    expect(row).to_contain_text(f"2 \u00d7 {first}")
    expect(row).to_contain_text(f"1 \u00d7 {second}")


def test_a_declined_card_shows_the_decline_and_no_order_is_confirmed(page: Page) -> None:
    register(page)
    search_and_add(page, "tea", 1)
    check_out(page, DECLINED)
    declined = page.get_by_test_id("declined")
    expect(declined).to_contain_text("Payment declined: the card was declined (card_declined)")
    expect(declined).to_have_attribute("role", "alert")
    save(page, "checkout-declined", OUT)
    assert "CONFIRMED" not in order_states(page)


def test_an_invalid_field_shows_its_message_next_to_the_field(page: Page) -> None:
    register(page)
    search_and_add(page, "kettle", 1)
    check_out(page, ACCEPTED, cvc="1")
    cvc = page.get_by_label("Security code (CVC)")
    expect(cvc).to_have_attribute("aria-invalid", "true")
    expect(cvc).to_be_focused()
    # The message is in the field's own box, and the field points at it.
    error_id = (cvc.get_attribute("aria-describedby") or "").split()[-1]
    error = page.locator(f"#{error_id}")
    expect(error).to_have_text("Security code (CVC): must be 3 or 4 digits")
    expect(page.locator(".field", has=cvc)).to_contain_text("must be 3 or 4 digits")
    save(page, "checkout-invalid-field", OUT)
    assert order_states(page) == []  # nothing was ordered (no order row, no confirmation)


def test_with_the_canary_at_100_percent_the_page_shows_v2_answering(
    mesh: MeshPlan, page: Page
) -> None:
    edge_sidecar = Edge(mesh).instance.admin_url
    register(page)

    async def split(percent: int) -> None:
        await set_split(mesh, percent)
        releases = canary.releases(mesh, RECOMMENDATION)
        wanted = {releases.stable: 100.0 - percent, releases.canary: float(percent)}
        await until(lambda: canary.applied_split(edge_sidecar, RECOMMENDATION) == wanted,
                    30, f"the edge's sidecar to apply the {percent}% split")

    try:
        in_thread(split(100))
        on_the_dashboard(page, lambda p: "v2" in p.get_by_test_id("dashboard-release").inner_text())
        expect(page.get_by_test_id("release")).to_contain_text("v2")
        save(page, "dashboard-canary-v2", OUT)
        # Every later answer is v2's too.
        on_the_dashboard(page, lambda p: True)
        expect(page.get_by_test_id("dashboard-release")).to_contain_text("v2")
    finally:
        in_thread(split(COMMITTED_SPLIT))


def test_the_trace_link_opens_the_calls_trace_in_zipkin_with_the_edges_and_services_spans(
    mesh: MeshPlan, context: BrowserContext, page: Page
) -> None:
    observability = Observability(mesh)
    assert observability.has_zipkin, "run `make setup` with java and mvn (it fetches Zipkin)"
    register(page)
    search_and_add(page, "french press", 1)
    check_out(page, ACCEPTED)
    expect(page.get_by_role("status").filter(has_text="is CONFIRMED")).to_be_visible()
    call = page.locator("#mesh li[data-method=POST]").filter(has_text="/orders").first
    link = call.locator("a.trace")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{observability.zipkin_url}/zipkin/traces/"), href
    trace_id = href.rsplit("/", 1)[1]

    wanted = {"edge", "order", "payment", "inventory", "cart"}

    def services_in_zipkin() -> set[str]:
        reply = requests.get(f"{observability.zipkin_url}/api/v2/trace/{trace_id}", timeout=5)
        if reply.status_code != 200:
            return set()
        return {s.get("localEndpoint", {}).get("serviceName", "") for s in reply.json()}

    # Spans reach Zipkin in batches (Envoy flushes every few seconds).
    in_thread(until(lambda: wanted <= services_in_zipkin(), 60, f"spans of {wanted}"))
    with context.expect_page() as opened:
        link.click()
    zipkin = opened.value
    zipkin.get_by_text("Total Spans").first.wait_for()
    text = zipkin.inner_text("body")
    assert trace_id in text
    for service in ("edge", "order"):
        assert f"{service}: " in text or f"{service}:" in text, (service, text[:2000])
    services = re.search(r"Services\s+(\d+)", text)
    assert services and int(services.group(1)) >= len(wanted), text[:2000]
    save(zipkin, "zipkin-trace-of-place-order", OUT)


def axe_serious(page: Page) -> list[dict[str, Any]]:
    """Axe-core's WCAG 2 A/AA violations of impact serious or critical on this page."""
    assert AXE.exists(), f"{AXE} is missing: `make setup` installs web/'s npm packages"
    if page.evaluate("typeof axe === 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa']}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_the_main_pages_have_no_serious_accessibility_violations(
    context: BrowserContext, page: Page
) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    found["catalog"] = axe_serious(page)
    page.get_by_test_id("products").locator("li .tile-link").first.click()
    expect(page.get_by_test_id("stock")).to_contain_text("available")
    found["product"] = axe_serious(page)
    nav(page, "Log in").click()
    found["login"] = axe_serious(page)
    register(page)
    found["dashboard"] = axe_serious(page)
    search_and_add(page, "tea", 1)
    nav(page, re.compile(r"^Cart")).click()
    expect(page.locator("tbody tr")).to_have_count(1)
    found["cart"] = axe_serious(page)
    check_out(page, ACCEPTED, cvc="1")
    expect(page.get_by_label("Security code (CVC)")).to_have_attribute("aria-invalid", "true")
    found["checkout with an error"] = axe_serious(page)
    # A phone-sized window: the same page, nothing wider than the screen.
    page.set_viewport_size(PHONE)
    found["checkout on a phone"] = axe_serious(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    save(page, "checkout-phone", OUT)
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px phone"
    assert not any(found.values()), json.dumps(found, indent=2)


def test_the_keyboard_alone_reaches_search_and_adds_to_the_cart(page: Page) -> None:
    register(page)
    nav(page, "Catalog").click()
    page.keyboard.press("Tab")  # focus starts on the page's heading: next is the search box
    for _ in range(30):
        if page.evaluate("document.activeElement.id") == "search":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type("espresso")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Search: “espresso”")
    first = page.get_by_test_id("products").locator("li button").first
    first.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("products").locator("li").first.get_by_role("status")).to_contain_text(
        "Added")


def test_the_mesh_view_shows_each_services_instances_health_and_circuit(
    mesh: MeshPlan, page: Page
) -> None:
    nav(page, "Mesh").click()
    rows = page.get_by_test_id("mesh").locator("tbody tr")
    catalog = page.locator("tr[data-service=catalog]")
    expect(catalog).to_be_visible()
    instances = {s: len([i for i in mesh.instances() if i.service == s])
                 for s in ("catalog", "recommendation", "order")}
    for service, count in instances.items():
        row = page.locator(f"tr[data-service={service}]")
        expect(row.locator("td").nth(1)).to_have_text(f"{count}/{count}")
        expect(row.locator("td").nth(4)).to_have_text("closed")
        expect(row.locator(".hosts li")).to_have_count(count)
    expect(page.locator("tr[data-service=recommendation] .hosts")).to_contain_text("v2")
    assert rows.count() >= 6, page.inner_text("main")  # every service with a public API
    save(page, "mesh", OUT)
    # The view is read-only: the edge routes nothing else of the sidecar's admin.
    for path in ("/api/mesh/clusters?format=text", "/api/mesh/quitquitquit"):
        reply = page.request.post(f"{Edge(mesh).url}{path}")
        assert reply.status in (404, 405), (path, reply.status)


def test_with_every_recommendation_instance_stopped_the_dashboard_is_degraded_and_recovers(
    mesh: MeshPlan, page: Page
) -> None:
    register(page)
    instances = [i for i in mesh.instances() if i.service == RECOMMENDATION]
    assert len(instances) >= 2  # v1's and v2's
    supervisor = Supervisor(mesh)
    try:
        threads = [threading.Thread(target=supervisor.stop, args=(f"services:{i.instance_id}",))
                   for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        on_the_dashboard(page, lambda p: p.get_by_test_id("degraded").count() > 0)
        degraded = page.get_by_test_id("degraded")
        expect(degraded).to_contain_text("Recommendations are degraded")
        expect(degraded).to_contain_text("popular products")
        expect(page.get_by_role("heading", name=re.compile("popular in the shop"))).to_be_visible()
        assert page.get_by_test_id("recommendations").locator("li").count() >= 1
        save(page, "dashboard-degraded", OUT)
    finally:
        for inst in instances:
            supervisor.start(f"services:{inst.instance_id}")
        in_thread(until(
            lambda: all(health_of(mesh, i.instance_id) == "passing" for i in instances),
            90, "every recommendation instance back and passing"))
    on_the_dashboard(page, lambda p: p.get_by_test_id("degraded").count() == 0)
    expect(page.get_by_test_id("recommendations").locator("li").first).to_be_visible()
    save(page, "dashboard", OUT)


# --- measured (numbers go to OUT/measurements.json and the run's output; no goals here) ---
def test_measure_a_cold_load_and_place_order_seen_from_the_browser(
    browser: Browser, shop_url: str
) -> None:
    context = browser.new_context(viewport=DESKTOP)  # a cold cache
    try:
        page = context.new_page()
        page.goto(shop_url)
        expect(page.get_by_test_id("products").locator("li").first).to_be_visible()
        page.wait_for_load_state("networkidle")
        load = page.evaluate("""() => {
          const first = performance.getEntriesByName('products-rendered')[0].startTime;
          const out = {first_product_list_ms: Math.round(first), bytes: {}};
          const entries = [performance.getEntriesByType('navigation')[0],
                           ...performance.getEntriesByType('resource')];
          for (const e of entries) {
            const path = new URL(e.name).pathname;
            const kind = path === '/' ? 'html' : path.endsWith('.js') ? 'js'
              : path.endsWith('.css') ? 'css' : path.startsWith('/images/') ? 'images'
              : path.startsWith('/api/') ? 'api' : 'other';
            const b = out.bytes[kind] ??= {transferred: 0, decoded: 0, files: 0};
            b.transferred += e.transferSize; b.decoded += e.decodedBodySize; b.files += 1;
          }
          return out;
        }""")
        orders = page.evaluate(PLACE_ORDERS.read_text(), {"users": 20, "orders": 5})
    finally:
        context.close()
    assert all(state == "STATE_CONFIRMED" for state in orders["states"]), orders["states"]
    latencies = sorted(orders["ms"])
    assets = sum(load["bytes"].get(k, {}).get("transferred", 0)
                 for k in ("html", "js", "css", "images"))
    result = {
        **load,
        "assets_transferred_bytes": assets,
        "place_order_ms": {
            "n": len(latencies), "p50": statistics.median(latencies),
            "p99": latencies[max(0, round(0.99 * len(latencies)) - 1)], "max": latencies[-1],
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "measurements.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert load["bytes"]["js"]["files"] == 1 and load["bytes"]["css"]["files"] == 1
