// The smallest store that fits: a value, its subscribers, and a hook that re-renders a component
// when the value changes. The SDK owns the chat state (channels, messages, presence); these hold
// what the app adds on top of it (which channel is open, display names, the inbox).

import { useEffect, useState } from 'preact/hooks';

export class Observable<T> {
  private listeners = new Set<() => void>();

  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  set(next: T): void {
    if (Object.is(next, this.current)) return;
    this.current = next;
    for (const l of [...this.listeners]) l();
  }

  update(fn: (v: T) => T): void {
    this.set(fn(this.current));
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The observable's value, re-rendering the caller on every change. */
export function useObservable<T>(o: Observable<T>): T {
  const [, bump] = useState(0);
  useEffect(() => o.subscribe(() => bump((n) => n + 1)), [o]);
  return o.value;
}
