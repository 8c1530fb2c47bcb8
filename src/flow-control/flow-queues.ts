// The queues behind admission: one band per priority (higher first), inside a band one FIFO per fairness
// flow, flows served round-robin (GIE's round-robin-fairness-policy with fcfs-ordering-policy), so a flow with
// 10× the traffic gets one turn per round like any other. Bounded per band (requests, bytes) and overall
// (bytes, GIE's flowControl.maxBytes). Removal (timeout, cancellation) is O(1): the item is marked and skipped
// when its flow's turn comes, while counts drop at once.

export interface QueueItem {
  readonly priority: number;
  readonly flow: string;
  readonly bytes: number;
  /** Set when the item leaves the queue for any reason; later removals are no-ops. */
  gone: boolean;
}

export interface QueueLimits {
  /** Per band; 0 = unbounded. */
  readonly maxRequestsPerBand: number;
  readonly maxBytesPerBand: number;
  /** Across all bands; 0 = unbounded. */
  readonly maxBytes: number;
}

class Fifo<T> {
  items: T[] = [];
  head = 0;
  live = 0;
  push(x: T): void {
    this.items.push(x);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head++];
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}

class Band<T extends QueueItem> {
  readonly flows = new Map<string, Fifo<T>>();
  /** Flows with live items, in round-robin order; `cursor` is the next flow's turn. */
  ring: string[] = [];
  cursor = 0;
  count = 0;
  bytes = 0;
}

export type RefusalReason = "band-full" | "pool-full";

export class FlowQueues<T extends QueueItem> {
  readonly #limits: QueueLimits;
  /** Bands by priority, kept sorted highest first. */
  #bands: { priority: number; band: Band<T> }[] = [];
  #count = 0;
  #bytes = 0;

  constructor(limits: QueueLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Live items of one flow in one band (for the fairness-id table and the queue gauges). */
  flowSize(priority: number, flow: string): number {
    return this.#band(priority, false)?.flows.get(flow)?.live ?? 0;
  }

  /** Whether any band holds a live item of `flow`. */
  flowBusy(flow: string): boolean {
    return this.#bands.some((b) => (b.band.flows.get(flow)?.live ?? 0) > 0);
  }

  /** Live items at priority ≥ `priority`: a newcomer there would wait behind them. */
  aheadOf(priority: number): number {
    let n = 0;
    for (const b of this.#bands) if (b.priority >= priority) n += b.band.count;
    return n;
  }

  /** Priority of the highest band holding a live item; null when nothing waits. */
  topPriority(): number | null {
    for (const b of this.#bands) if (b.band.count > 0) return b.priority;
    return null;
  }

  /** Why `item` cannot be queued, or null when it fits. */
  refusal(item: T): RefusalReason | null {
    const l = this.#limits;
    if (l.maxBytes > 0 && this.#bytes + item.bytes > l.maxBytes) return "pool-full";
    const band = this.#band(item.priority, false);
    const count = band?.count ?? 0;
    const bytes = band?.bytes ?? 0;
    if (l.maxRequestsPerBand > 0 && count + 1 > l.maxRequestsPerBand) return "band-full";
    if (l.maxBytesPerBand > 0 && bytes + item.bytes > l.maxBytesPerBand) return "band-full";
    return null;
  }

  push(item: T): void {
    const band = this.#band(item.priority, true)!;
    let fifo = band.flows.get(item.flow);
    if (fifo === undefined) {
      fifo = new Fifo<T>();
      band.flows.set(item.flow, fifo);
    }
    if (fifo.live === 0 && !band.ring.includes(item.flow)) band.ring.push(item.flow);
    fifo.push(item);
    fifo.live++;
    band.count++;
    band.bytes += item.bytes;
    this.#count++;
    this.#bytes += item.bytes;
  }

  /** Removes `item` wherever it is (timeout, cancellation). */
  remove(item: T): void {
    if (item.gone) return;
    item.gone = true;
    const band = this.#band(item.priority, false);
    const fifo = band?.flows.get(item.flow);
    if (band === undefined || fifo === undefined) return;
    this.#account(band, fifo, item);
  }

  /** The next item: the highest band with items, its flows in turn, each flow first-come first-served. */
  pop(): T | undefined {
    for (const { band } of this.#bands) {
      while (band.count > 0 && band.ring.length > 0) {
        if (band.cursor >= band.ring.length) band.cursor = 0;
        const flow = band.ring[band.cursor]!;
        const fifo = band.flows.get(flow)!;
        let item = fifo.shift();
        while (item?.gone) item = fifo.shift();
        if (item === undefined) {
          // Only removed items were left: the flow leaves the ring (the next flow slides into this slot).
          band.ring.splice(band.cursor, 1);
          band.flows.delete(flow);
          continue;
        }
        item.gone = true;
        this.#account(band, fifo, item);
        if (fifo.live === 0) {
          band.ring.splice(band.cursor, 1);
          band.flows.delete(flow);
        } else {
          band.cursor++;
        }
        return item;
      }
    }
    return undefined;
  }

  /** Every live item (shutdown). */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.pop(); item !== undefined; item = this.pop()) out.push(item);
    return out;
  }

  #account(band: Band<T>, fifo: Fifo<T>, item: T): void {
    fifo.live--;
    band.count--;
    band.bytes -= item.bytes;
    this.#count--;
    this.#bytes -= item.bytes;
  }

  #band(priority: number, create: boolean): Band<T> | undefined {
    const found = this.#bands.find((b) => b.priority === priority);
    if (found !== undefined || !create) return found?.band;
    const band = new Band<T>();
    this.#bands.push({ priority, band });
    this.#bands.sort((a, b) => b.priority - a.priority);
    return band;
  }
}
