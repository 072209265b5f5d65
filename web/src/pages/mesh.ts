// The mesh as the browser sees it: what the footer shows for every call, explained.

import { h, show } from "../dom";
import type { Route } from "../router";

export function meshPage(main: HTMLElement, _route: Route): void {
  show(main, h("h1", {}, "The mesh"),
    h("p", {}, "Every call this page makes goes to the edge (an Envoy at /api/v1), which sends it over mTLS through its sidecar to the service's sidecars. The list at the bottom of every page shows the last calls: their status and time, the edge's request id, and the trace id, a link to that call's trace in Zipkin with the spans of every sidecar it crossed."),
    h("p", {}, "Recommendation runs two releases (v1 in Python, v2 in Go) behind one name; the header x-meshmart-version of each answer says which one answered. `make canary PCT=100` sends all traffic to v2."));
}
