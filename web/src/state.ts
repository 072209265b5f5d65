// Small shared values the header shows (the cart's item count), with change listeners.

export class Value<T> {
  private listeners: (() => void)[] = [];

  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  set value(next: T) {
    if (next === this.current) return;
    this.current = next;
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
}

export const cartCount = new Value(0);

/** A message for the next page (e.g. "Order … confirmed" after checkout). */
export const flash = new Value("");
