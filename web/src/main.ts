// The storefront: a hash router over plain TypeScript page modules (no framework: the
// pages are small and the whole bundle stays a few kilobytes).

import "./style.css";
import { h, show } from "./dom";
import { meshFooter } from "./meshbar";
import { authPage } from "./pages/auth";
import { cartPage } from "./pages/cart";
import { catalogPage } from "./pages/catalog";
import { checkoutPage } from "./pages/checkout";
import { dashboardPage } from "./pages/dashboard";
import { meshPage } from "./pages/mesh";
import { ordersPage } from "./pages/orders";
import { productPage } from "./pages/product";
import { go, leave, type Page, parseRoute, setRenderer } from "./router";
import { session } from "./session";
import { cartCount } from "./state";

const pages: Record<string, Page> = {
  "/": catalogPage,
  "/product": productPage,
  "/login": authPage,
  "/register": authPage,
  "/cart": cartPage,
  "/checkout": checkoutPage,
  "/orders": ordersPage,
  "/dashboard": dashboardPage,
  "/mesh": meshPage,
};

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;

function link(href: string, text: string | Node, current: string): HTMLElement {
  const here = parseRoute(href).path === current;
  return h("li", {}, h("a", { href, "aria-current": here ? "page" : undefined }, text));
}

function renderNav(): void {
  const current = parseRoute(location.hash).path;
  const items = [link("#/", "Catalog", current)];
  if (session.loggedIn) {
    const count = cartCount.value;
    items.push(
      link("#/dashboard", "Dashboard", current),
      link("#/cart", h("span", {}, "Cart", count ? ` (${count})` : ""), current),
      link("#/orders", "Orders", current),
    );
  }
  items.push(link("#/mesh", "Mesh", current));
  if (session.loggedIn) {
    items.push(h("li", {}, h("button", {
      type: "button", class: "link",
      onclick: () => { session.clear(); go("#/"); },
    }, `Log out ${session.user?.fullName ?? ""}`.trim())));
  } else {
    items.push(link("#/login", "Log in", current), link("#/register", "Register", current));
  }
  nav.replaceChildren(...items);
}

async function render(): Promise<void> {
  leave();
  const route = parseRoute(location.hash);
  renderNav();
  const page = pages[route.path];
  if (!page) {
    show(main, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the catalog")));
    return;
  }
  await page(main, route);
}

session.onChange(renderNav);
cartCount.onChange(renderNav);
setRenderer(() => void render());
window.addEventListener("hashchange", () => void render());
// A link to the page already shown loads it again (no hashchange), as a person expects of
// clicking "Dashboard" on the dashboard.
document.addEventListener("click", (event) => {
  const a = (event.target as Element | null)?.closest?.("a[href^='#']");
  if (a && a.getAttribute("href") === (location.hash || "#/")) {
    event.preventDefault();
    go(location.hash || "#/");
  }
});
document.getElementById("mesh")?.replaceChildren(meshFooter());
void render();
