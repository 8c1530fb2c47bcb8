// One endpoint's dispatch credit: the load kvpick itself put on it that its scraped metrics cannot show yet.
// Two views, both kept by the routing decisions and the response path, never by the pod:
// - since the latest scrape: requests and the prompt tokens expected to be computed (SMG's since-poll credit).
//   A fresh reading takes back only what was routed before that scrape was *requested*: what was routed
//   while the scrape was in flight (or still on its way to the pod) is not in the page yet and keeps its
//   credit. (Taking it all back on arrival left those requests counted nowhere; on a loaded gateway that gap
//   let flow control release more than the pods could take.)
// - until the first token: prompt tokens still to be prefilled (a streaming response's first chunk ends
//   it), which a scrape shows only as one more running request. A request that never reports a first token
//   (non-streaming, or the response body is not observed) stops counting after `pendingMaxAgeMs`.
import type { DispatchCredit } from "./endpoint.js";

/** Handed to the router for one routed request; each method acts once, later calls are ignored. */
export interface DispatchTicket {
  /** The first response token arrived: the prompt is prefilled. */
  firstToken(): void;
  /** The response ended (or the stream died). */
  done(): void;
  /**
   * The request was served by another endpoint (the gateway walked the fallback list): it never loaded this
   * one. Takes back its since-scrape credit (unless a scrape came meanwhile) and ends it, as `done`.
   */
  retract?(): void;
}

/** One routed request's since-scrape credit. */
interface Routed {
  readonly at: number;
  readonly tokens: number;
  /** Still in the since-scrape credit (not yet taken back by a reading or a retraction). */
  counted: boolean;
}

interface Pending {
  readonly at: number;
  readonly tokens: number;
  /** Still counted in pendingPrefillTokens. */
  prefilling: boolean;
  open: boolean;
}

export const NO_DISPATCH: DispatchCredit = Object.freeze({
  requests: 0,
  prefillTokens: 0,
  pendingPrefillTokens: 0,
  inflight: 0,
});

export class DispatchLedger {
  readonly #pendingMaxAgeMs: number;
  #requests = 0;
  #tokens = 0;
  #since: number;
  /** Requests in the since-scrape credit, in routing order (taken back from the head by readings). */
  #routed: Routed[] = [];
  #routedHead = 0;
  #inflight = 0;
  #prefilling = 0;
  /** Tickets still prefilling, oldest first (aged out from the head). */
  #queue: Pending[] = [];
  #head = 0;

  constructor(now: number, pendingMaxAgeMs: number) {
    this.#since = now;
    this.#pendingMaxAgeMs = pendingMaxAgeMs;
  }

  /** A request was routed here expecting `prefillTokens` uncached prompt tokens. */
  dispatch(prefillTokens: number, now: number, staleAfterMs: number): DispatchTicket {
    const tokens = Math.max(0, prefillTokens);
    // Credit older than a stale reading belongs to a pod whose scrapes fail: drop it rather than let it grow.
    if (now - this.#since > staleAfterMs) this.scraped(now);
    this.#requests++;
    this.#tokens += tokens;
    const routed: Routed = { at: now, tokens, counted: true };
    this.#routed.push(routed);
    this.#inflight++;
    this.#age(now);
    const p: Pending = { at: now, tokens, prefilling: tokens > 0, open: true };
    if (p.prefilling) {
      this.#prefilling += tokens;
      this.#queue.push(p);
    }
    const done = () => {
      this.#prefilled(p);
      if (!p.open) return;
      p.open = false;
      this.#inflight--;
    };
    return {
      firstToken: () => this.#prefilled(p),
      done,
      retract: () => {
        if (p.open && routed.counted) {
          routed.counted = false;
          this.#requests--;
          this.#tokens -= tokens;
        }
        done();
      },
    };
  }

  /**
   * A fresh reading landed from a scrape requested at `requestedAt`: what was routed until then is now in
   * the page (as waiting or running requests) and leaves the credit; what was routed later stays.
   */
  scraped(requestedAt: number): void {
    const q = this.#routed;
    while (this.#routedHead < q.length && q[this.#routedHead]!.at <= requestedAt) {
      const r = q[this.#routedHead++]!;
      if (!r.counted) continue;
      r.counted = false;
      this.#requests--;
      this.#tokens -= r.tokens;
    }
    if (this.#routedHead === q.length) {
      this.#routed = [];
      this.#routedHead = 0;
    } else if (this.#routedHead > 64 && this.#routedHead * 2 > q.length) {
      this.#routed = q.slice(this.#routedHead);
      this.#routedHead = 0;
    }
    this.#since = Math.max(this.#since, requestedAt);
  }

  credit(now: number, staleAfterMs: number): DispatchCredit {
    this.#age(now);
    const fresh = now - this.#since <= staleAfterMs;
    if (this.#inflight === 0 && this.#prefilling === 0 && (!fresh || this.#requests === 0))
      return NO_DISPATCH;
    return {
      requests: fresh ? this.#requests : 0,
      prefillTokens: fresh ? this.#tokens : 0,
      pendingPrefillTokens: this.#prefilling,
      inflight: this.#inflight,
    };
  }

  #prefilled(p: Pending): void {
    if (!p.prefilling) return;
    p.prefilling = false;
    this.#prefilling -= p.tokens;
  }

  #age(now: number): void {
    const q = this.#queue;
    while (this.#head < q.length) {
      const p = q[this.#head]!;
      if (p.prefilling && now - p.at <= this.#pendingMaxAgeMs) break;
      this.#prefilled(p);
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
  }
}
