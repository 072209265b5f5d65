// One product: price, description and live stock (refreshed every few seconds while
// the page is open).

import { errorBox, h, money, show } from "../dom";
import { onLeave, type Route } from "../router";
import { getProduct, getStock, type Product } from "../shop";
import { addToCart, imageOf } from "./products";

const STOCK_REFRESH_MS = 5000;

export async function productPage(main: HTMLElement, route: Route): Promise<void> {
  show(main, h("h1", {}, "Product"), h("p", {}, "Loading…"));
  let product: Product;
  try {
    product = (await getProduct(route.arg)).product;
  } catch (error) {
    show(main, h("h1", {}, "Product"), errorBox(error, `load product ${route.arg}`),
      h("p", {}, h("a", { href: "#/" }, "Back to the catalog")));
    return;
  }
  const stock = h("p", { class: "stock", "aria-live": "polite", "data-testid": "stock" },
    "Checking stock…");
  const status = h("p", { class: "status", role: "status" });
  const quantity = h("input", { id: "qty", type: "number", min: 1, max: 99, value: 1,
    inputmode: "numeric" });
  const form = h("form", { class: "buy", onsubmit: (e: Event) => {
    e.preventDefault();
    void addToCart(product, Number(quantity.value) || 1, status);
  } }, h("label", { for: "qty" }, "Quantity"), quantity,
  h("button", { type: "submit" }, "Add to cart"));

  async function refresh(): Promise<void> {
    try {
      const level = (await getStock(product.productId)).items[0];
      const n = level?.available ?? 0;
      stock.textContent = n > 0 ? `In stock: ${n} available` : "Out of stock";
      stock.classList.toggle("out", n <= 0);
    } catch (error) {
      stock.replaceChildren(errorBox(error, "check the stock"));
    }
  }
  const timer = window.setInterval(() => void refresh(), STOCK_REFRESH_MS);
  onLeave(() => window.clearInterval(timer));

  show(main, h("article", { class: "product" },
    h("img", { src: imageOf(product), alt: `${product.category} picture`, width: 320, height: 240 }),
    h("div", {},
      h("h1", {}, product.name),
      h("p", { class: "price big", "data-testid": "price" }, money(product.price)),
      stock,
      h("p", {}, product.description),
      h("p", {}, "Category: ", h("a", { href: `#/?category=${encodeURIComponent(product.category)}` },
        product.category)),
      form, status)));
  await refresh();
}
