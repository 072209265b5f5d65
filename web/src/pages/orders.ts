// Order history: every order with its state (and why, when it was cancelled).

import { errorBox, h, money, notice, show } from "../dom";
import type { Route } from "../router";
import { listOrders, stateName } from "../shop";
import { flash } from "../state";
import { needLogin } from "./guard";

export async function ordersPage(main: HTMLElement, _route: Route): Promise<void> {
  if (needLogin(main, "#/orders")) return;
  const message = flash.value ? notice(flash.value) : null;
  flash.value = "";
  const body = h("div", {}, h("p", {}, "Loading your orders…"));
  show(main, h("h1", {}, "Your orders"), message, body);
  try {
    const { orders } = await listOrders();
    if (!orders.length) {
      body.replaceChildren(h("p", {}, "No orders yet."));
      return;
    }
    body.replaceChildren(h("div", { class: "table-wrap" }, h("table", { "data-testid": "orders" },
      h("caption", { class: "sr-only" }, "Your orders, newest first"),
      h("thead", {}, h("tr", {}, ["Order", "Placed", "Items", "Total", "State"].map(
        (t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, orders.map((o) => {
        const state = stateName(o.state);
        return h("tr", { "data-order-id": o.orderId },
          h("th", { scope: "row" }, h("code", {}, o.orderId.slice(0, 8))),
          h("td", {}, o.createdAt ? new Date(o.createdAt).toLocaleString() : ""),
          h("td", {}, o.lines.map((l) => `${l.quantity} × ${l.name}`).join(", ")),
          h("td", {}, money(o.total)),
          h("td", {}, h("span", { class: `state ${state.toLowerCase()}` }, state),
            o.cancelReason ? ` (${o.cancelReason})` : ""));
      })))));
  } catch (error) {
    body.replaceChildren(errorBox(error, "load your orders"));
  }
}
