// The mesh, live: every service the edge calls, as the edge's sidecar sees it right now
// (the edge routes two read-only GETs of that sidecar's Envoy admin: /api/mesh/clusters
// and /api/mesh/stats; see tools/mesh/edge/config.py). Per service: each instance's
// sidecar with its health (Consul's checks, pushed to Envoy) and whether outlier
// detection has ejected it, and the circuit breaker's state. Refreshed every 2 s.

import { get } from "../api";
import { errorBox, h, show } from "../dom";
import { onLeave, type Route } from "../router";

const REFRESH_MS = 2000;

interface Host {
  address: { socket_address: { address: string; port_value: number } };
  health_status: { eds_health_status?: string; failed_outlier_check?: boolean;
    failed_active_health_check?: boolean };
  stats?: { name: string; value?: string }[];
}

interface Cluster {
  name: string;
  host_statuses?: Host[];
}

interface Service {
  name: string;
  hosts: { release: string; address: string; health: string; ejected: boolean; requests: number }[];
  requests: number;
  retries: number;
  active: number;
  open: boolean;
}

// [failover-target~][subset.]service.default.<dc>.internal.<trust domain>.consul
const CLUSTER = /^(?:failover-target~)?(?:([A-Za-z0-9_-]+)\.)?([a-z-]+)\.default\..*\.consul$/;

function services(clusters: Cluster[], stats: { name: string; value?: number }[]): Service[] {
  const out = new Map<string, Service>();
  const of = (name: string) => {
    let s = out.get(name);
    if (!s) out.set(name, s = { name, hosts: [], requests: 0, retries: 0, active: 0, open: false });
    return s;
  };
  for (const c of clusters) {
    const m = CLUSTER.exec(c.name);
    if (!m) continue;
    const service = of(m[2]);
    for (const host of c.host_statuses ?? []) {
      const a = host.address.socket_address;
      const address = `${a.address}:${a.port_value}`;
      // A host is in several clusters (its release's subset, a failover target): once.
      const seen = service.hosts.find((x) => x.address === address);
      if (seen) {
        seen.release ||= m[1] ?? ""; // the same host in its release's subset cluster
        continue;
      }
      const requests = Number(host.stats?.find((x) => x.name === "rq_total")?.value ?? 0);
      service.hosts.push({
        release: m[1] ?? "", address,
        health: host.health_status.eds_health_status ?? "UNKNOWN",
        ejected: !!host.health_status.failed_outlier_check, requests,
      });
    }
  }
  for (const stat of stats) {
    const m = /^cluster\.(.+\.consul)\.(.+)$/.exec(stat.name);
    const c = m && CLUSTER.exec(m[1]);
    if (!m || !c) continue;
    const s = of(c[2]);
    const v = Number(stat.value ?? 0);
    if (m[2] === "upstream_rq_total") s.requests += v;
    else if (m[2] === "upstream_rq_retry") s.retries += v;
    else if (m[2] === "upstream_rq_active") s.active += v;
    else if (m[2] === "circuit_breakers.default.rq_open" && v > 0) s.open = true;
  }
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function table(list: Service[]): HTMLElement {
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": "mesh" },
    h("caption", {}, "Each service the edge calls, as the edge's sidecar sees it"),
    h("thead", {}, h("tr", {}, ["Service", "Instances (sidecar address, health, requests)",
      "Healthy", "Requests", "Retries", "Circuit"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, list.map((s) => {
      const healthy = s.hosts.filter((x) => x.health === "HEALTHY" && !x.ejected).length;
      return h("tr", { "data-service": s.name },
        h("th", { scope: "row" }, s.name),
        h("td", {}, h("ul", { class: "hosts" }, s.hosts.map((x) => h("li", {},
          h("code", {}, x.address), x.release ? ` ${x.release}` : "", " ",
          h("span", { class: `state ${x.health === "HEALTHY" && !x.ejected ? "confirmed" : "cancelled"}` },
            x.ejected ? "EJECTED" : x.health), ` ${x.requests} req`)))),
        h("td", {}, `${healthy}/${s.hosts.length}`),
        h("td", {}, String(s.requests)),
        h("td", {}, String(s.retries)),
        h("td", {}, h("span", { class: `state ${s.open ? "cancelled" : "confirmed"}` },
          s.open ? "OPEN" : "closed")));
    }))));
}

export async function meshPage(main: HTMLElement, _route: Route): Promise<void> {
  const body = h("div", { "aria-live": "polite", "aria-busy": "true" }, h("p", {}, "Asking the edge's sidecar…"));
  const updated = h("p", { class: "hint" });
  show(main, h("h1", {}, "The mesh"),
    h("p", {}, "Every call this page makes goes to the edge (an Envoy at /api/v1), which sends it over mTLS through its sidecar to one instance's sidecar. The footer of every page lists the last calls with their trace in Zipkin and which recommendation release answered."),
    updated, body);

  let stopped = false;
  let timer = 0;
  onLeave(() => { stopped = true; window.clearTimeout(timer); });
  async function refresh(): Promise<void> {
    try {
      const [clusters, stats] = await Promise.all([
        get<{ cluster_statuses: Cluster[] }>("/api/mesh/clusters"),
        get<{ stats: { name: string; value?: number }[] }>("/api/mesh/stats"),
      ]);
      if (stopped) return;
      body.replaceChildren(table(services(clusters.cluster_statuses ?? [], stats.stats ?? [])));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshed every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (!stopped) body.replaceChildren(errorBox(error, "read the mesh's state"));
    } finally {
      body.removeAttribute("aria-busy");
      if (!stopped) timer = window.setTimeout(() => void refresh(), REFRESH_MS);
    }
  }
  await refresh();
}
