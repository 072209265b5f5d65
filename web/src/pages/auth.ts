// Register and log in. Registering logs in right away; the token stays in memory
// (see session.ts for why).

import { errorBox, field, h, showFieldErrors, show } from "../dom";
import { go, type Route } from "../router";
import { getCart, login, register } from "../shop";
import { cartCount } from "../state";
import { countItems } from "./products";

export function authPage(main: HTMLElement, route: Route): void {
  const registering = route.path === "/register";
  const next = route.params.get("next") || "#/dashboard";
  const name = field("Full name", "full_name", { autocomplete: "name", required: true });
  const email = field("Email", "email", { type: "email", autocomplete: "email", required: true });
  const password = field("Password", "password", {
    type: "password", required: true,
    autocomplete: registering ? "new-password" : "current-password",
  }, registering ? "At least 8 characters." : "");
  const fields = registering ? [name, email, password] : [email, password];
  const status = h("div", { class: "form-status" });
  const button = h("button", { type: "submit" }, registering ? "Create account" : "Log in");

  const form = h("form", { novalidate: true, onsubmit: async (e: Event) => {
    e.preventDefault();
    button.disabled = true;
    status.replaceChildren();
    showFieldErrors(fields, null);
    try {
      if (registering) await register(email.input.value, password.input.value, name.input.value);
      await login(email.input.value, password.input.value);
      cartCount.value = countItems((await getCart()).cart);
      go(next);
    } catch (error) {
      const rest = showFieldErrors(fields, error);
      status.replaceChildren(errorBox(error, registering ? "create the account" : "log in"));
      if (rest.length) status.append(h("p", {}, rest.join("; ")));
    } finally {
      button.disabled = false;
    }
  } }, ...fields.map((f) => f.wrap), button, status);

  const other = registering
    ? h("p", {}, "Have an account? ", h("a", { href: "#/login" }, "Log in"))
    : h("p", {}, "New here? ", h("a", { href: "#/register" }, "Create an account"));
  show(main, h("h1", {}, registering ? "Create an account" : "Log in"), form, other);
}
