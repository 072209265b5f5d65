// Who is logged in. The access token lives in this module's memory only, never in
// localStorage or a cookie: a script that got into the page (XSS) cannot read it from
// storage after the fact, no other tab or later visit inherits it, and with no cookie
// there is no cross-site request that carries it (no CSRF to defend against). The price:
// reloading the page logs out. Navigation is by #hash, so moving around keeps the page
// (and the token); the token expires on its own (expires_in) anyway.

export interface User {
  userId: string;
  email: string;
  fullName: string;
}

type Listener = () => void;

class Session {
  token = "";
  user: User | null = null;
  private listeners: Listener[] = [];

  get loggedIn(): boolean {
    return this.token !== "" && this.user !== null;
  }

  set(token: string, user: User): void {
    this.token = token;
    this.user = user;
    this.changed();
  }

  clear(): void {
    if (!this.token && !this.user) return;
    this.token = "";
    this.user = null;
    this.changed();
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

export const session = new Session();
