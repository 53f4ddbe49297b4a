// When to try again after a failed send: what the collector asked for (Retry-After, seconds
// or an HTTP date), otherwise exponential back-off with jitter, so a collector coming back
// is not hit by every browser at the same instant.

export const FIRST_DELAY_MS = 1000;
export const MAX_DELAY_MS = 60000;
// A Retry-After beyond this is treated as this: a page should not hold events for hours.
export const MAX_RETRY_AFTER_MS = 600000;

/** Milliseconds a Retry-After header asks to wait; null when absent or unreadable. */
export function retryAfterMs(header, nowMs) {
  const text = String(header ?? "").trim(); // absent or empty: Date.parse says NaN
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(at - nowMs, 0), MAX_RETRY_AFTER_MS);
}

/** The wait before the next attempt after `failures` (≥ 1) failures in a row. */
export function retryDelayMs(failures, header, nowMs, random = Math.random) {
  const asked = retryAfterMs(header, nowMs);
  if (asked !== null) return asked;
  const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(failures - 1, 0));
  return Math.round(ceiling * (0.5 + random() / 2));
}
