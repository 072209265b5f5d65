// The mesh, visible on every page: the last API calls with their status, time, the
// edge's request id and the trace id as a link to that trace in Zipkin, and which
// release of recommendation answered last (its x-meshmart-version response header).

import { type CallInfo, onCall } from "./api";
import { h } from "./dom";
import { Value } from "./state";

const KEEP = 5;

/** Zipkin runs beside the mesh on the same host (tools/mesh/observability.py, port 9411). */
export function zipkinUrl(traceId: string): string {
  return `${location.protocol}//${location.hostname}:9411/zipkin/traces/${traceId}`;
}

export const release = new Value("");

export function meshFooter(): HTMLElement {
  const calls: CallInfo[] = [];
  const list = h("ol", { class: "calls" });
  const releaseLine = h("p", { class: "release", "data-testid": "release" });

  function renderRelease(): void {
    releaseLine.replaceChildren(release.value
      ? h("span", {}, "recommendation release that answered last: ", h("strong", {}, release.value))
      : "recommendation release: not called yet");
  }

  onCall((call) => {
    if (call.path.startsWith("/api/mesh/")) return; // the mesh page's own polling
    if (call.version) release.value = call.version;
    calls.unshift(call);
    calls.length = Math.min(calls.length, KEEP);
    list.replaceChildren(...calls.map((c) => h("li", { "data-path": c.path, "data-method": c.method },
      h("code", {}, `${c.method} ${c.path.split("?")[0]}`), ` → ${c.status} in ${c.ms} ms`,
      c.version ? ` · ${c.version}` : "",
      " · trace ",
      h("a", { href: zipkinUrl(c.traceId), target: "_blank", rel: "noopener", class: "trace",
        "aria-label": `trace ${c.traceId} of ${c.method} ${c.path.split("?")[0]} in Zipkin` },
      c.traceId.slice(0, 12)),
      c.requestId ? h("span", { class: "rid" }, ` · request id ${c.requestId}`) : "")));
  });
  release.onChange(renderRelease);
  renderRelease();
  return h("div", { class: "meshbar" }, h("h2", {}, "Through the mesh"), releaseLine, list);
}
