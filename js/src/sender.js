// Sends the outbox to the collector in batches, and removes an event only once the
// collector confirmed it (202) or refused it for good (400 naming it).
//
// The body is JSON sent as text/plain: a "simple" cross-origin request (no preflight), and
// the only type navigator.sendBeacon can send to another origin.

import { byteLength } from "./items.js";
import { FAILING_KEY } from "./outbox.js";
import { retryDelayMs } from "./retry.js";

// Browsers refuse keepalive requests and beacons whose bodies add up to more than 64 KiB
// of bytes (UTF-8), not of characters: 45,000 characters of CJK text are 120 KB.
export const BEACON_LIMIT = 60000;
const ITEM_FIELD = /^\[(\d+)\]/;
const FETCH_TIMEOUT_MS = 30000;
// Where a page says the collector failed it (FAILING_KEY), for the pages after it (and
// other tabs): removed by the next post that succeeds. Older than a day, it says nothing.
const FAILING_FOR_MS = 86400000;

/** The endpoint with the write key as its write_key query parameter: a beacon cannot carry
 * headers, and a header on fetch would make every post wait for a CORS preflight. */
export function withWriteKey(endpoint, writeKey) {
  if (!writeKey) return endpoint;
  const url = new URL(endpoint);
  url.searchParams.set("write_key", String(writeKey));
  return url.href;
}

export class Sender {
  /** ``settings``: {endpoint, outbox, batchSize, flushMs, env}; env: {fetch, beacon,
   * setTimeout, clearTimeout, now, random, report}. */
  constructor(settings) {
    Object.assign(this, settings);
    this.full = this.batchSize; // halved while a batch is over the collector's limit
    this.enabled = false; // false until consent (when required)
    this.inFlight = false;
    this.failures = 0;
    this.notBefore = 0; // no attempt before this time (back-off, Retry-After)
    this.timer = 0; // none pending (timer ids are above 0)
    this.sent = 0;
    this.refused = 0; // events the collector refused for good (400 naming them)
    // A keepalive fetch the browser refused (its in-flight budget is shared by the page's
    // keepalive requests) fails like an unreachable collector: the retry goes without it.
    this.keepaliveFailed = false;
  }

  /** Flush soon: now when a batch is full, else after the flush interval. */
  schedule(delayMs) {
    if (!this.enabled || !this.outbox.size) return;
    const wait = Math.max(
      delayMs ?? (this.outbox.size >= this.batchSize ? 0 : this.flushMs),
      this.notBefore - this.env.now(),
    );
    if (this.timer) {
      if (delayMs === undefined && wait > 0) return; // the pending timer is soon enough
      this.env.clearTimeout(this.timer);
    }
    this.timer = this.env.setTimeout(() => {
      this.timer = 0;
      this.flush();
    }, wait);
  }

  async flush() {
    if (!this.enabled || this.inFlight) return;
    if (this.env.now() < this.notBefore) {
      // Early by the page's clock (its timers run on another, or a caller flushed during a
      // back-off): wait for the rest, or nothing would send until the page tracks again.
      this.schedule(0);
      return;
    }
    const batch = this.outbox.peek(this.batchSize);
    if (!batch.length) return;
    this.inFlight = true;
    const body = JSON.stringify(batch.map((item) => item.body));
    const keepalive = !this.keepaliveFailed && byteLength(body) < BEACON_LIMIT;
    let status = 0;
    let retryAfter = null;
    let answer = null;
    try {
      const response = await this.env.fetch(this.endpoint, {
        method: "POST",
        body,
        // (No headers: a string body goes as text/plain;charset=UTF-8 by the Fetch
        // standard, which the collector reads as JSON.)
        keepalive,
        credentials: "omit",
        // A request nobody answers (a proxy that holds it) is given up after a while, or
        // the page would send nothing more: retried as an unreachable collector's. (No
        // timeout where the browser has no AbortSignal.timeout: Safari before 16.)
        signal: AbortSignal.timeout?.(FETCH_TIMEOUT_MS),
      });
      status = response.status;
      retryAfter = response.headers.get("Retry-After");
      // Its error (said on the console) and field (naming the item to drop).
      if (status > 399) answer = await response.json().catch(() => null);
    } catch {
      status = 0; // offline, refused connection, CORS: try again later
      if (keepalive) this.keepaliveFailed = true;
    }
    this.inFlight = false;
    this.settle(batch, status, retryAfter, answer);
  }

  settle(batch, status, retryAfter, answer) {
    if (status >= 200 && status < 300) {
      this.failures = 0;
      this.keepaliveFailed = false;
      this.note(null);
      this.sent += batch.length;
      this.outbox.remove(batch.map((item) => item.id));
      this.schedule(this.outbox.size ? 0 : undefined);
      return;
    }
    if (status === 413 && batch.length > 1) {
      this.batchSize = batch.length >> 1; // (at least 1: the batch has 2 or more)
      this.schedule(0);
      return;
    }
    const match = ITEM_FIELD.exec(answer?.field); // none: "undefined", which names no item
    // A 403 naming an item: it names another app than the write key's, for good. A 413 of
    // a lone item: it is over the size limit on its own.
    if (status === 400 || status === 413 || (status === 403 && match)) {
      // The collector refuses a whole request for its first bad item and names it; the
      // item can never be accepted, the others can.
      const bad = match && batch[Number(match[1])] ? [batch[Number(match[1])]] : batch;
      // Said with the collector's reason: dropped without a word, a 1.6 MB event showed
      // only as the browser's "Failed to load resource: 413".
      this.env.report?.(
        `collector refused ${bad.map((item) => item.body.event_type || item.body.kind)}: ${answer?.error || status}`,
      );
      this.refused += bad.length;
      // The item the halving looked for is found: later batches are full again (they
      // went one per request for the page's life).
      this.batchSize = this.full;
      this.outbox.remove(bad.map((item) => item.id));
      this.schedule(0);
      return;
    }
    // Unreachable, busy (503, 429) or misconfigured (401: no or an unknown write key; 403:
    // an origin not listed; 404: an endpoint it does not serve): keep everything, wait, try
    // again. A misconfiguration is said (once): the console showed only the browser's
    // "Failed to load resource".
    if (status > 400 && status < 429 && !this.failures) {
      this.env.report?.(`collector answered ${status}; kept`);
    }
    this.failures += 1;
    const now = this.env.now();
    this.notBefore = now + retryDelayMs(this.failures, retryAfter, now, this.env.random);
    this.note(now);
    this.schedule(0);
  }

  /** Keep (a time) or clear (null) the word that the collector is failing, in storage. */
  note(failedAt) {
    const storage = this.outbox.storage;
    if (!storage) return;
    try {
      if (failedAt === null) storage.removeItem(FAILING_KEY);
      else storage.setItem(FAILING_KEY, JSON.stringify({ at: failedAt }));
    } catch {
      // Storage full or refused: this page still knows.
    }
  }

  /** Whether this page, or one before it (or another tab), found the collector failing
   * and no post has succeeded since. */
  knownFailing() {
    if (this.failures > 0 || this.env.now() < this.notBefore) return true;
    const storage = this.outbox.storage;
    if (!storage) return false;
    try {
      // None kept, or unreadable: NaN, which is not within the day.
      return this.env.now() - JSON.parse(storage.getItem(FAILING_KEY))?.at < FAILING_FOR_MS;
    } catch {
      return false;
    }
  }

  /** The page is being hidden or closed: hand what fits to the browser as a beacon, unless
   * the collector is known to be failing (an attempt of this page, or of one before it,
   * failed and none has succeeded since, back-off over or not): then the events stay in
   * storage for the next page. A page left before its first attempt knew nothing and gave
   * its own events, and those it took over from a failed page, to a beacon that went
   * nowhere. */
  beacon() {
    if (!this.enabled || this.knownFailing()) return;
    if (!this.env.beacon) return;
    const batch = [];
    let size = 2;
    for (const item of this.outbox.items) {
      const length = byteLength(JSON.stringify(item.body)) + 1;
      // An item too big for a beacon on its own (or for what is left of it) stays for the
      // next page; those after it still go (they stopped at it: none went after a big one).
      if (size + length > BEACON_LIMIT) continue;
      batch.push(item);
      size += length;
    }
    if (!batch.length) return;
    // A queued beacon is the browser's to deliver; if it does not, the next page cannot
    // know, so this is the one hand-over the tag does not confirm (docs/browser.md).
    if (this.env.beacon(this.endpoint, JSON.stringify(batch.map((item) => item.body)))) {
      this.sent += batch.length;
      this.outbox.remove(batch.map((item) => item.id));
    }
  }
}
