// Hash routing: #/product/sku-1001?x=1 -> {path: "/product", arg: "sku-1001", params}.
// The page never reloads while a person shops, so the in-memory session survives.

export interface Route {
  path: string;
  arg: string;
  params: URLSearchParams;
}

export type Page = (main: HTMLElement, route: Route) => Promise<void> | void;

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [pathPart, queryPart = ""] = raw.split("?", 2);
  const parts = pathPart.split("/").filter(Boolean);
  return {
    path: parts.length ? `/${parts[0]}` : "/",
    arg: decodeURIComponent(parts.slice(1).join("/")),
    params: new URLSearchParams(queryPart),
  };
}

let rerender: () => void = () => {};
export function setRenderer(render: () => void): void {
  rerender = render;
}

export function go(hash: string): void {
  if (location.hash === hash) rerender();
  else location.hash = hash;
}

/** Stopped when the page changes (e.g. the product page's live stock). */
let cleanups: (() => void)[] = [];
export function onLeave(cleanup: () => void): void {
  cleanups.push(cleanup);
}

export function leave(): void {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
}
