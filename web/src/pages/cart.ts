// The cart: change a line's quantity, remove it, go to checkout.

import { errorBox, h, money, show } from "../dom";
import type { Route } from "../router";
import { type Cart, getCart, removeItem, setQuantity } from "../shop";
import { cartCount } from "../state";
import { countItems } from "./products";
import { needLogin } from "./guard";

export async function cartPage(main: HTMLElement, _route: Route): Promise<void> {
  if (needLogin(main, "#/cart")) return;
  const status = h("div", { class: "form-status", role: "status" });
  const body = h("div", {}, h("p", {}, "Loading your cart…"));
  show(main, h("h1", {}, "Your cart"), status, body);

  function render(cart: Cart): void {
    cartCount.value = countItems(cart);
    if (!cart.items.length) {
      body.replaceChildren(h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the catalog")));
      return;
    }
    const rows = cart.items.map((line) => {
      const id = `qty-${line.productId}`;
      const qty = h("input", { id, type: "number", min: 1, max: 99, value: line.quantity,
        inputmode: "numeric", class: "qty" });
      qty.addEventListener("change", () => void act(() => setQuantity(line.productId, Number(qty.value)),
        `change the quantity of ${line.name}`));
      return h("tr", { "data-product-id": line.productId },
        h("th", { scope: "row" }, line.name),
        h("td", {}, money(line.unitPrice)),
        h("td", {}, h("label", { for: id, class: "sr-only" }, `Quantity of ${line.name}`), qty),
        h("td", {}, money(line.lineTotal)),
        h("td", {}, h("button", { type: "button", class: "secondary",
          onclick: () => void act(() => removeItem(line.productId), `remove ${line.name}`),
          "aria-label": `Remove ${line.name}` }, "Remove")));
    });
    body.replaceChildren(
      h("div", { class: "table-wrap" }, h("table", {},
        h("caption", { class: "sr-only" }, "Items in your cart"),
        h("thead", {}, h("tr", {}, ["Product", "Price", "Quantity", "Total", ""].map(
          (t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: 3 }, "Total"),
          h("td", { "data-testid": "cart-total" }, money(cart.total)), h("td", {}))))),
      h("p", {}, h("a", { href: "#/checkout", class: "button" }, "Check out")));
  }

  async function act(action: () => Promise<{ cart: Cart }>, what: string): Promise<void> {
    status.replaceChildren();
    try {
      render((await action()).cart);
      status.textContent = "Cart updated.";
    } catch (error) {
      status.replaceChildren(errorBox(error, what));
    }
  }

  try {
    render((await getCart()).cart);
  } catch (error) {
    body.replaceChildren(errorBox(error, "load your cart"));
  }
}
