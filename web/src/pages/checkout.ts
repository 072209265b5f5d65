// Checkout: shipping address and card. Test cards: 4242 4242 4242 4242 is accepted,
// 4000 0000 0000 0002 declined (card_declined), 4000 0000 0000 9995 declined
// (insufficient_funds). A field the shop rejects (a BadRequest field violation) gets its
// message right under the field; a decline is said in words with its reason.

import { ApiError } from "../api";
import { errorBox, type Field, field, h, show, showFieldErrors } from "../dom";
import { go, type Route } from "../router";
import { placeOrder, stateName } from "../shop";
import { cartCount, flash } from "../state";
import { needLogin } from "./guard";

// Outcomes the shop may not have decided yet: the same idempotency key is used again on
// a retry so the order is placed at most once. Any other answer is final, so the next
// attempt is a new order.
const UNDECIDED = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL"]);

export function checkoutPage(main: HTMLElement, _route: Route): void {
  if (needLogin(main, "#/checkout")) return;
  const year = new Date().getFullYear();
  const f = {
    name: field("Full name", "shipping_address.name", { autocomplete: "name", required: true }),
    line1: field("Address", "shipping_address.line1", { autocomplete: "address-line1", required: true }),
    line2: field("Address line 2 (optional)", "shipping_address.line2", { autocomplete: "address-line2" }),
    city: field("City", "shipping_address.city", { autocomplete: "address-level2", required: true }),
    postal: field("Postal code", "shipping_address.postal_code", { autocomplete: "postal-code", required: true }),
    country: field("Country code", "shipping_address.country", { autocomplete: "country",
      required: true, maxlength: 2, size: 3 }, "Two letters, e.g. DE"),
    number: field("Card number", "card.number", { autocomplete: "cc-number", inputmode: "numeric",
      required: true }, "Test cards: 4242 4242 4242 4242 is accepted, 4000 0000 0000 0002 is declined."),
    month: field("Expiry month", "card.exp_month", { type: "number", min: 1, max: 12,
      autocomplete: "cc-exp-month", value: 12, required: true }),
    yearF: field("Expiry year", "card.exp_year", { type: "number", min: year,
      autocomplete: "cc-exp-year", value: year + 3, required: true }),
    cvc: field("Security code (CVC)", "card.cvc", { autocomplete: "cc-csc", inputmode: "numeric",
      required: true, maxlength: 4, size: 5 }),
  };
  const fields: Field[] = Object.values(f);
  const status = h("div", { class: "form-status", "data-testid": "checkout-status" });
  const button = h("button", { type: "submit" }, "Place order");
  let key = crypto.randomUUID();

  const form = h("form", { novalidate: true, onsubmit: async (e: Event) => {
    e.preventDefault();
    button.disabled = true;
    status.replaceChildren(h("p", { role: "status" }, "Placing your order…"));
    showFieldErrors(fields, null);
    try {
      const { order } = await placeOrder(key, {
        number: f.number.input.value.replace(/\s+/g, ""),
        expMonth: Number(f.month.input.value), expYear: Number(f.yearF.input.value),
        cvc: f.cvc.input.value.trim(),
      }, {
        name: f.name.input.value, line1: f.line1.input.value, line2: f.line2.input.value,
        city: f.city.input.value, postalCode: f.postal.input.value,
        country: f.country.input.value.trim(),
      });
      key = crypto.randomUUID();
      const state = stateName(order.state);
      if (state === "CANCELLED") {
        status.replaceChildren(h("div", { class: "alert", role: "alert", "data-testid": "declined" },
          h("strong", {}, "Your order was not placed. "),
          readableReason(order.cancelReason), " Your cart is unchanged: try another card."));
        return;
      }
      cartCount.value = 0;
      flash.value = `Order ${order.orderId} is ${state}.`;
      go("#/orders");
    } catch (error) {
      if (!(error instanceof ApiError && UNDECIDED.has(error.code))) key = crypto.randomUUID();
      const rest = showFieldErrors(fields, error);
      status.replaceChildren(errorBox(error, "place the order"));
      if (rest.length) status.append(h("p", {}, rest.join("; ")));
    } finally {
      button.disabled = false;
    }
  } },
  h("fieldset", {}, h("legend", {}, "Ship to"),
    f.name.wrap, f.line1.wrap, f.line2.wrap, f.city.wrap, f.postal.wrap, f.country.wrap),
  h("fieldset", {}, h("legend", {}, "Pay with"),
    f.number.wrap, h("div", { class: "row" }, f.month.wrap, f.yearF.wrap, f.cvc.wrap)),
  button, status);

  show(main, h("h1", {}, "Checkout"), h("p", {}, h("a", { href: "#/cart" }, "← Back to the cart")), form);
}

/** "payment declined: card_declined" -> "Payment declined: the card was declined." */
function readableReason(reason: string): string {
  const words: Record<string, string> = {
    card_declined: "the card was declined",
    insufficient_funds: "the card has insufficient funds",
  };
  const m = /^payment declined: (\w+)/.exec(reason);
  if (m) return `Payment declined: ${words[m[1]] ?? m[1].replace(/_/g, " ")} (${m[1]}).`;
  return reason ? `${reason[0].toUpperCase()}${reason.slice(1)}.` : "It was cancelled.";
}
