// Small DOM helpers: elements from code (text is always set as text, never as HTML),
// labelled form fields with a slot for their error, and the readable error box.

import { ApiError } from "./api";

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.replace(/^on/, ""), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

export interface Money {
  amountMinor: string | number;
  currency: string;
}

export function money(m: Money | undefined): string {
  if (!m) return "";
  const amount = Number(m.amountMinor) / 100;
  return new Intl.NumberFormat("en-IE", { style: "currency", currency: m.currency || "EUR" })
    .format(amount);
}

let fieldCount = 0;

export interface Field {
  wrap: HTMLElement;
  input: HTMLInputElement;
  error: HTMLElement;
}

/** A labelled input whose error (a BadRequest field violation) shows right under it.
 *  `field` is the request's field path as the API names it (e.g. "card.number"). */
export function field(
  label: string, field: string, attrs: Attrs = {}, hint = ""
): Field {
  const id = `f${++fieldCount}`;
  const error = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const input = h("input", {
    id, name: field, "data-field": field,
    "aria-describedby": [hint && `${id}-hint`, `${id}-error`].filter(Boolean).join(" "),
    ...attrs,
  });
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), hintEl, input, error);
  return { wrap, input, error };
}

/** Show each violation next to its field; returns the violations no field took. */
export function showFieldErrors(fields: Field[], error: unknown): string[] {
  for (const f of fields) {
    f.error.textContent = "";
    f.input.removeAttribute("aria-invalid");
  }
  if (!(error instanceof ApiError)) return [];
  const rest: string[] = [];
  for (const [name, description] of error.fields) {
    const f = fields.find((x) => x.input.dataset.field === name);
    if (f) {
      f.error.textContent = `${f.wrap.querySelector("label")?.textContent}: ${description}`;
      f.input.setAttribute("aria-invalid", "true");
    } else {
      rest.push(`${name}: ${description}`);
    }
  }
  const first = fields.find((f) => f.input.getAttribute("aria-invalid"));
  first?.input.focus();
  return rest;
}

/** The readable message of any failure, in an alert box. */
export function errorBox(error: unknown, what = ""): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  const title = what ? `Could not ${what}.` : "Something went wrong.";
  const extra = error instanceof ApiError && error.fields.size
    ? h("ul", {}, [...error.fields].map(([f, d]) => h("li", {}, `${f}: ${d}`)))
    : null;
  return h("div", { class: "alert", role: "alert" }, h("strong", {}, title), " ", message, extra);
}

export function notice(text: string): HTMLElement {
  return h("div", { class: "notice", role: "status" }, text);
}

/** Replace the main region's content and move focus to its heading (for screen readers
 *  and keyboard users, as a page load would). */
export function show(main: HTMLElement, ...content: Child[]): void {
  main.replaceChildren(...content.filter((c): c is Node | string => !!c));
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}
