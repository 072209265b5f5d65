// A product tile (catalog, dashboard) and the add-to-cart action every page shares.

import { errorBox, h, money } from "../dom";
import { go } from "../router";
import { session } from "../session";
import { addItem, type Cart, type Product } from "../shop";
import { cartCount } from "../state";

export function countItems(cart: Cart): number {
  return cart.items.reduce((n, line) => n + line.quantity, 0);
}

/** Add to the cart, saying what happened in `status` (a live region). */
export async function addToCart(product: Product, quantity: number, status: HTMLElement) {
  if (!session.loggedIn) {
    go(`#/login?next=${encodeURIComponent(`#/product/${product.productId}`)}`);
    return;
  }
  status.textContent = `Adding ${product.name}…`;
  try {
    const { cart } = await addItem(product.productId, quantity);
    cartCount.value = countItems(cart);
    status.replaceChildren(`Added ${product.name} to your cart. `,
      h("a", { href: "#/cart" }, `View cart (${cartCount.value})`));
  } catch (error) {
    status.replaceChildren(errorBox(error, `add ${product.name} to the cart`));
  }
}

/** The product's picture. A catalog database seeded before the shop served its own
 *  pictures still has the old outside URLs (the seed never overwrites a row): those
 *  products get their category's picture. */
export function imageOf(product: Product): string {
  const url = product.imageUrl;
  return url.startsWith("/") ? url : `/images/${encodeURIComponent(product.category)}.svg`;
}

export function productTile(product: Product): HTMLElement {
  const status = h("p", { class: "status", role: "status" });
  const href = `#/product/${encodeURIComponent(product.productId)}`;
  return h("li", { class: "tile", "data-product-id": product.productId },
    h("a", { href, class: "tile-link" },
      h("img", { src: imageOf(product), alt: "", width: 160, height: 120, loading: "lazy" }),
      h("span", { class: "name" }, product.name)),
    h("p", { class: "price" }, money(product.price)),
    h("button", { type: "button", onclick: () => void addToCart(product, 1, status),
      "aria-label": `Add ${product.name} to cart` }, "Add to cart"),
    status);
}
