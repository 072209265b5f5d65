// The dashboard (storefront's GetDashboard): recommendations, recent orders and
// payments. When a part's service is down the rest still shows, and the page says what is
// missing (the response's `degraded` list). Beside it, one direct call to recommendation
// shows which release answers (x-meshmart-version, see meshbar.ts).

import { errorBox, h, money, show } from "../dom";
import type { Route } from "../router";
import { getDashboard, getRecommendations, stateName } from "../shop";
import { release as answered } from "../meshbar";
import { needLogin } from "./guard";
import { productTile } from "./products";

const MISSING: Record<string, string> = {
  recommendation: "Recommendations are degraded: the recommendation service is not answering, so these are the shop's popular products.",
  order: "Your recent orders are missing: the order service is not answering.",
  payment: "Your recent payments are missing: the payment service is not answering.",
  user: "Your profile is missing: the user service is not answering.",
};

export async function dashboardPage(main: HTMLElement, _route: Route): Promise<void> {
  if (needLogin(main, "#/dashboard")) return;
  show(main, h("h1", {}, "Your dashboard"), h("p", {}, "Loading…"));
  const [dashboard, direct] = await Promise.allSettled([getDashboard(), getRecommendations()]);
  if (dashboard.status === "rejected") {
    show(main, h("h1", {}, "Your dashboard"), errorBox(dashboard.reason, "load your dashboard"));
    return;
  }
  const d = dashboard.value;
  const degraded = d.degraded.length
    ? h("div", { class: "alert warn", role: "status", "data-testid": "degraded" },
      h("strong", {}, "Degraded. "), d.degraded.map((s) => MISSING[s] ?? `${s} is not answering.`).join(" "))
    : null;
  const source = d.recommendationSource.endsWith("PERSONALIZED") ? "picked for you"
    : d.recommendationSource.endsWith("POPULAR") ? "popular in the shop" : "";
  const release = direct.status === "fulfilled"
    ? h("p", { class: "hint", "data-testid": "dashboard-release" }, "Recommendation release answering: ",
      h("strong", {}, answered.value || "(no x-meshmart-version header)"))
    : h("p", { class: "hint" }, `Recommendation called directly: ${(direct.reason as Error).message}`);

  show(main,
    h("h1", {}, d.user?.fullName ? `Hello, ${d.user.fullName}` : "Your dashboard"),
    degraded,
    h("section", { "aria-labelledby": "rec" },
      h("h2", { id: "rec" }, "Recommendations", source ? ` (${source})` : ""),
      d.recommendations.length
        ? h("ul", { class: "grid", "data-testid": "recommendations" }, d.recommendations.map(productTile))
        : h("p", {}, "No recommendations right now."),
      release),
    h("section", { "aria-labelledby": "recent" },
      h("h2", { id: "recent" }, "Recent orders"),
      d.recentOrders.length
        ? h("ul", {}, d.recentOrders.map((o) => h("li", {},
          h("code", {}, o.orderId.slice(0, 8)), ` ${money(o.total)} — `,
          h("span", { class: `state ${stateName(o.state).toLowerCase()}` }, stateName(o.state)))))
        : h("p", {}, "No orders yet."),
      h("p", {}, h("a", { href: "#/orders" }, "All orders"))),
    h("section", { "aria-labelledby": "payments" },
      h("h2", { id: "payments" }, "Recent payments"),
      d.recentPayments.length
        ? h("ul", {}, d.recentPayments.map((p) => h("li", {},
          `${money(p.amount)} with card ••••${p.cardLast4}: ${stateName(p.status)}`,
          p.declineReason ? ` (${p.declineReason})` : "")))
        : h("p", {}, "No payments yet.")));
}
