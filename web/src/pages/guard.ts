// Pages of one customer ask them to log in first (the token is in memory only, so a
// reload logs out: see session.ts).

import { h, show } from "../dom";
import { session } from "../session";

export function needLogin(main: HTMLElement, here: string): boolean {
  if (session.loggedIn) return false;
  const next = encodeURIComponent(here);
  show(main, h("h1", {}, "Please log in"),
    h("p", {}, "This page is about your account. ",
      h("a", { href: `#/login?next=${next}` }, "Log in"), " or ",
      h("a", { href: `#/register?next=${next}` }, "create an account"), "."));
  return true;
}
