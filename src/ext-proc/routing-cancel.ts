// A routing call's cancellation: the stream aborts it when it ends while the router decides. Its AbortSignal
// is made only when a router asks for it: creating one costs ~30 µs of CPU in Node 20 (more than parsing a
// warm body), and most requests never wait on it. One listener (`onAbort`) serves a forwarding router (the
// ext_proc serving thread) that must pass the cancel on at once without paying for a signal.
export class RoutingCancel {
  aborted = false;
  #controller: AbortController | null = null;
  #listener: (() => void) | null = null;

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** Calls `listener` once when aborted (at once if already aborted); a later call replaces it. */
  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else this.#listener = listener;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.#controller?.abort();
    const listener = this.#listener;
    this.#listener = null;
    listener?.();
  }
}
