import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_DELAY_MS, MAX_RETRY_AFTER_MS, retryAfterMs, retryDelayMs } from "../src/retry.js";

test("Retry-After in seconds or as an HTTP date is what the wait is", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");
  assert.equal(retryAfterMs("5", now), 5000);
  assert.equal(retryAfterMs("Mon, 30 Nov 2026 12:00:07 GMT", now), 7000);
  assert.equal(retryAfterMs("Mon, 30 Nov 2026 11:00:00 GMT", now), 0);
  assert.equal(retryAfterMs("99999", now), MAX_RETRY_AFTER_MS);
  assert.equal(retryAfterMs("soon", now), null);
  assert.equal(retryAfterMs(null, now), null);
  assert.equal(retryDelayMs(7, "2", now), 2000, "the collector's wish beats back-off");
});

test("back-off doubles to a ceiling, with jitter in its upper half", () => {
  const delays = [1, 2, 3, 4, 10].map((failures) => retryDelayMs(failures, null, 0, () => 1));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, MAX_DELAY_MS]);
  assert.equal(retryDelayMs(1, null, 0, () => 0), 500);
});
