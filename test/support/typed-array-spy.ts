// Measures allocations of typed arrays: the kv-index growth tests check that no growth step allocates (and
// so copies into) one big array, which is what held the event loop for 100+ ms at millions of blocks.

/** Runs `fn` with the typed-array constructors spied on; returns the largest length allocated. */
export function spyOnTypedArrays(fn: () => void): number {
  let largest = 0;
  const saved = [globalThis.Uint32Array, globalThis.Uint16Array, globalThis.Uint8Array] as const;
  // A Proxy, not a subclass: the arrays made are the real thing (a subclass's are 1,000× slower to index).
  const spy = <T extends object>(Base: T): T =>
    new Proxy(Base, {
      construct(target, args: unknown[]) {
        if (typeof args[0] === "number") largest = Math.max(largest, args[0]);
        return Reflect.construct(target as new (...a: unknown[]) => object, args);
      },
    });
  globalThis.Uint32Array = spy(saved[0]);
  globalThis.Uint16Array = spy(saved[1]);
  globalThis.Uint8Array = spy(saved[2]);
  try {
    fn();
  } finally {
    [globalThis.Uint32Array, globalThis.Uint16Array, globalThis.Uint8Array] = saved;
  }
  return largest;
}
