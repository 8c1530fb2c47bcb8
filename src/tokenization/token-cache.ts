// Token ids per text section, bounded by bytes and evicted least-recently-used first. One cache serves every
// tokenizer: entries live in one Map per namespace (a tokenizer, plus "section 0" for tokenizers whose first
// section encodes differently), so lookups hash the section text itself, never a concatenated key (a 25k-char
// system prompt would be copied on every request).

interface Entry {
  ns: Map<string, Entry>;
  key: string;
  ids: Uint32Array;
  bytes: number;
  prev: Entry | null;
  next: Entry | null;
}

/**
 * `text` as a string of its own. A section is a slice of the whole rendered prompt, and V8 keeps a slice as a
 * view that holds its parent alive: a cached 60-character user turn would pin its 45 KB prompt, and a stream
 * of distinct user turns would fill the heap with prompts the cache accounts as 120 bytes each (measured:
 * GC a quarter of the request path's CPU). `" " + text` is a concatenation; slicing it flattens it into a new
 * string of text.length + 1 characters, and the result refers to that one only.
 */
function detached(text: string): string {
  return ` ${text}`.slice(1);
}

/** Bookkeeping estimate per entry: Map slot, entry object, typed-array header. */
const ENTRY_OVERHEAD = 160;

export class TokenCache {
  readonly maxBytes: number;
  #bytes = 0;
  #entries = 0;
  /** Most recently used at the head, eviction from the tail. */
  #head: Entry | null = null;
  #tail: Entry | null = null;
  readonly #namespaces = new Map<string, Map<string, Entry>>();

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries;
  }

  /** Cost of caching `text` with `ids` (two bytes per UTF-16 unit, four per id). */
  static costOf(text: string, idCount: number): number {
    return 2 * text.length + 4 * idCount + ENTRY_OVERHEAD;
  }

  namespace(name: string): Map<string, Entry> {
    let ns = this.#namespaces.get(name);
    if (ns === undefined) {
      ns = new Map();
      this.#namespaces.set(name, ns);
    }
    return ns;
  }

  get(ns: Map<string, Entry>, text: string): Uint32Array | undefined {
    const e = ns.get(text);
    if (e === undefined) return undefined;
    this.#unlink(e);
    this.#pushHead(e);
    return e.ids;
  }

  /** Stores ids for `text`; entries larger than the whole budget are not cached. */
  set(ns: Map<string, Entry>, text: string, ids: Uint32Array): void {
    const bytes = TokenCache.costOf(text, ids.length);
    if (bytes > this.maxBytes) return;
    const old = ns.get(text);
    if (old !== undefined) this.#remove(old);
    const key = detached(text);
    const e: Entry = { ns, key, ids, bytes, prev: null, next: null };
    ns.set(key, e);
    this.#pushHead(e);
    this.#bytes += bytes;
    this.#entries++;
    while (this.#bytes > this.maxBytes && this.#tail !== null) this.#remove(this.#tail);
  }

  clear(): void {
    for (const ns of this.#namespaces.values()) ns.clear();
    this.#head = this.#tail = null;
    this.#bytes = 0;
    this.#entries = 0;
  }

  #remove(e: Entry): void {
    this.#unlink(e);
    e.ns.delete(e.key);
    this.#bytes -= e.bytes;
    this.#entries--;
  }

  #unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.#head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.#tail = e.prev;
    e.prev = e.next = null;
  }

  #pushHead(e: Entry): void {
    e.next = this.#head;
    if (this.#head) this.#head.prev = e;
    this.#head = e;
    if (this.#tail === null) this.#tail = e;
  }
}

export type CacheNamespace = ReturnType<TokenCache["namespace"]>;
