// Display names of users, fetched once each (GET /v1/users/{id}) and cached for the session.
// A name shows as the user id until it arrives, and stays the id when the user has none.

import type { RestClient } from '@palaver/client';
import { Observable, useObservable } from './observable';

export class Names {
  private names = new Map<string, string>();
  private asked = new Set<string>();
  /** Bumped whenever a name arrives, so components showing names re-render. */
  readonly version = new Observable(0);

  constructor(private rest: RestClient) {}

  /** The display name of `id` (its id until known); asks the server the first time. */
  get(id: string): string {
    const known = this.names.get(id);
    if (known !== undefined) return known;
    if (!this.asked.has(id)) {
      this.asked.add(id);
      this.rest.user(id).then(
        (u) => {
          this.names.set(id, u.display_name || id);
          this.version.update((n) => n + 1);
        },
        // Unknown user (or a transient failure): keep showing the id rather than retrying in a loop.
        () => this.names.set(id, id),
      );
    }
    return id;
  }

  /** Records names that came with another answer (GET /v1/users pages), saving requests. */
  learn(id: string, displayName: string | null | undefined): void {
    if (this.names.get(id) === (displayName || id)) return;
    this.names.set(id, displayName || id);
    this.asked.add(id);
    this.version.update((n) => n + 1);
  }
}

/** Subscribes the caller to name arrivals; returns the lookup. */
export function useNames(names: Names): (id: string) => string {
  useObservable(names.version);
  return (id) => names.get(id);
}
