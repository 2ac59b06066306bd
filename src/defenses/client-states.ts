/**
 * Per-client state a defense keeps (a detector's stream, a watermark record), bounded: at most
 * `capacity` clients, the least recently seen evicted first (an evicted client starts afresh). A
 * server must not grow without limit under many keys.
 */
export class ClientStates<T> {
  // a Map iterates in insertion order: re-inserting on each use makes it the recency order
  private readonly states = new Map<string, T>();

  constructor(readonly capacity: number) {}

  /** the client's state, made by `fresh` when it has none; marks it the most recently seen */
  use(id: string, fresh: () => T): T {
    let s = this.states.get(id);
    if (s !== undefined) this.states.delete(id);
    else {
      s = fresh();
      while (this.states.size >= this.capacity) this.states.delete(this.states.keys().next().value as string);
    }
    this.states.set(id, s);
    return s;
  }

  /** the client's state without touching its recency, if it has one */
  peek(id: string): T | undefined {
    return this.states.get(id);
  }

  get size(): number {
    return this.states.size;
  }
}
