// The one poll helper of the tests: waits for state instead of sleeping, bounded so a broken component
// fails its test with what it was waiting for instead of hanging it.

/**
 * Polls `check` (sync or async) every `intervalMs` until it holds; throws "timed out waiting for <what>"
 * after `timeoutMs`. Use a longer interval when `check` itself is costly (an HTTP scrape).
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
