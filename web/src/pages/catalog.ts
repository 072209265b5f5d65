// The catalog: categories, search and paging (page tokens are opaque, so the pages seen
// so far are remembered to go back).

import { errorBox, h, notice, show } from "../dom";
import type { Route } from "../router";
import { CATEGORIES, listProducts, searchProducts } from "../shop";
import { flash } from "../state";
import { productTile } from "./products";

// tokens[list][n] is the page token of page n + 1 of one listing ("" for page 1).
const tokens = new Map<string, string[]>();

function hashOf(params: Record<string, string>): string {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `#/${q ? `?${q}` : ""}`;
}

export async function catalogPage(main: HTMLElement, route: Route): Promise<void> {
  const category = route.params.get("category") ?? "";
  const q = (route.params.get("q") ?? "").trim();
  const page = Math.max(1, Number(route.params.get("page") ?? "1") || 1);
  const listing = q ? `q:${q}` : `c:${category}`;
  const known = tokens.get(listing) ?? [""];
  tokens.set(listing, known);
  const wanted = page <= known.length ? page : 1;
  const title = q ? `Search: “${q}”` : category ? `Category: ${category}` : "All products";

  const search = h("form", { role: "search", class: "search", onsubmit: (e: Event) => {
    e.preventDefault();
    const value = (input.value || "").trim();
    location.hash = value ? hashOf({ q: value }) : "#/";
  } });
  const input = h("input", { id: "search", type: "search", name: "q", value: q,
    placeholder: "e.g. espresso" });
  search.append(h("label", { for: "search" }, "Search products"), input,
    h("button", { type: "submit" }, "Search"));

  const categories = h("nav", { "aria-label": "Categories", class: "categories" }, h("ul", {},
    [h("li", {}, h("a", { href: "#/", "aria-current": !category && !q ? "page" : undefined }, "All")),
      ...CATEGORIES.map((c) => h("li", {}, h("a", { href: hashOf({ category: c }),
        "aria-current": c === category ? "page" : undefined }, c)))]));

  const results = h("section", { "aria-labelledby": "results", "aria-busy": "true" },
    h("h2", { id: "results" }, `Page ${wanted}`), h("p", {}, "Loading products…"));
  const message = flash.value ? notice(flash.value) : null;
  flash.value = "";
  show(main, h("h1", {}, title), message, search, categories, results);

  try {
    const token = known[wanted - 1];
    const result = q ? await searchProducts(q, token) : await listProducts(category, token);
    if (result.nextPageToken) known[wanted] = result.nextPageToken;
    const pager = h("nav", { "aria-label": "Pages", class: "pager" },
      wanted > 1 ? h("a", { href: hashOf({ category, q, page: String(wanted - 1) }), rel: "prev" },
        "← Previous page") : null,
      result.nextPageToken ? h("a", { href: hashOf({ category, q, page: String(wanted + 1) }),
        rel: "next" }, "Next page →") : null);
    results.replaceChildren(h("h2", { id: "results" }, `Page ${wanted}`),
      result.products.length
        ? h("ul", { class: "grid", "data-testid": "products" }, result.products.map(productTile))
        : h("p", {}, q ? `Nothing matches “${q}”.` : "No products here."),
      pager);
    // The first product list a visit shows (tests/web measures time to it on a cold load).
    if (!performance.getEntriesByName("products-rendered").length) performance.mark("products-rendered");
  } catch (error) {
    results.replaceChildren(errorBox(error, "load the products"));
  } finally {
    results.removeAttribute("aria-busy");
  }
}
