import assert from "node:assert/strict";
import { test } from "node:test";
import { Outbox } from "../src/outbox.js";
import { Sender, withWriteKey } from "../src/sender.js";

function harness(answers) {
  const outbox = new Outbox({ storage: null, pageId: "p", max: 100 });
  const requests = [];
  const timers = [];
  let now = 0;
  const env = {
    fetch: async (url, init) => {
      requests.push(JSON.parse(init.body).map((b) => b.event_id));
      const [status, headers, body] = answers.shift() ?? [202, {}, {}];
      if (status === 0) throw new TypeError("Failed to fetch");
      return { status, headers: new Map(Object.entries(headers)), json: async () => body };
    },
    beacon: null,
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
    clearTimeout: () => {},
    now: () => now,
    random: () => 1,
  };
  const sender = new Sender({ endpoint: "http://c/v1/events", outbox, batchSize: 3, flushMs: 1000, env });
  sender.enabled = true;
  for (const id of ["a", "b", "c", "d"]) outbox.add({ id, body: { event_id: id } });
  return { outbox, sender, requests, timers, advance: (ms) => (now += ms) };
}

test("a 503 keeps the batch and waits as long as Retry-After says", async () => {
  const h = harness([[503, { "Retry-After": "5" }, {}]]);
  await h.sender.flush();
  assert.equal(h.outbox.size, 4);
  assert.equal(h.timers.at(-1).ms, 5000);
  await h.sender.flush();
  assert.equal(h.requests.length, 1, "no attempt before the time asked");
  h.advance(5000);
  await h.sender.flush();
  assert.deepEqual(h.requests[1], ["a", "b", "c"], "the same events, same ids");
  assert.equal(h.outbox.size, 1);
});

test("an unreachable collector is retried with growing back-off", async () => {
  const h = harness([[0], [0]]);
  await h.sender.flush();
  assert.equal(h.timers.at(-1).ms, 1000);
  h.advance(1000);
  await h.sender.flush();
  assert.equal(h.timers.at(-1).ms, 2000);
  assert.equal(h.outbox.size, 4);
});

test("a 400 drops only the item it names", async () => {
  const h = harness([[400, {}, { error: "is required", field: "[1].app_version" }]]);
  await h.sender.flush();
  assert.deepEqual(
    h.outbox.peek(10).map((i) => i.id),
    ["a", "c", "d"],
  );
  assert.equal(h.sender.refused, 1);
});

test("a 413 halves the batch before giving up on a single event", async () => {
  const h = harness([[413, {}, {}], [413, {}, {}]]);
  await h.sender.flush();
  assert.equal(h.sender.batchSize, 1);
  await h.sender.flush();
  assert.equal(h.sender.refused, 1);
  assert.equal(h.outbox.size, 3);
});

test("the event the halving found is said with the collector's reason; batches are full again", async () => {
  // Found by a new user: a 1.6 MB event went without a word of the tag's, and every later
  // event went in a request of its own for the page's life.
  const h = harness([[413, {}, {}], [413, {}, { error: "request body over 1048576 bytes", field: "body" }]]);
  const said = [];
  h.sender.env.report = (message) => said.push(message);
  h.outbox.items[0].body.event_type = "review";
  await h.sender.flush();
  await h.sender.flush();
  assert.deepEqual(said, ["collector refused review: request body over 1048576 bytes"]);
  assert.equal(h.sender.batchSize, 3);
  await h.sender.flush();
  assert.deepEqual(h.requests.at(-1), ["b", "c", "d"]);
});

test("a refusal without the collector's JSON (a proxy's page) is said with its status", async () => {
  const h = harness([[400, {}, null]]);
  const said = [];
  h.sender.env.report = (message) => said.push(message);
  h.outbox.items[0].body.kind = "click";
  h.outbox.items[1].body.event_type = "page_view";
  h.outbox.items[2].body.event_type = "add_to_cart";
  await h.sender.flush();
  // No item named: the whole request is refused, each of its items named in the message.
  assert.deepEqual(said, ["collector refused click,page_view,add_to_cart: 400"]);
  assert.equal(h.outbox.size, 1);
});

test("a 404 (an endpoint the collector does not serve) is said once, and everything is kept", async () => {
  const h = harness([[404, {}, {}], [404, {}, {}]]);
  const said = [];
  h.sender.env.report = (message) => said.push(message);
  await h.sender.flush();
  h.advance(60000);
  await h.sender.flush();
  assert.equal(h.outbox.size, 4);
  assert.deepEqual(said, ["collector answered 404; kept"]);
});

test("a 403 naming an item (another app than the write key's) drops only that item", async () => {
  const h = harness([[403, {}, { error: "names app 'x'", field: "[2].context.app" }]]);
  await h.sender.flush();
  assert.deepEqual(
    h.outbox.peek(10).map((i) => i.id),
    ["a", "b", "d"],
  );
  assert.equal(h.sender.refused, 1);
});

test("a 401 (no or an unknown write key) and a 403 for the origin keep everything", async () => {
  const h = harness([[401, {}, { error: "a write key is required" }], [403, {}, { field: "Origin" }]]);
  await h.sender.flush();
  assert.equal(h.outbox.size, 4);
  h.advance(60000);
  await h.sender.flush();
  assert.equal(h.outbox.size, 4);
  assert.equal(h.sender.refused, 0);
});

test("a write key goes on the endpoint as the write_key query parameter", () => {
  assert.equal(withWriteKey("https://c.example/v1/events", null), "https://c.example/v1/events");
  assert.equal(
    withWriteKey("https://c.example/v1/events?x=1", "wk 1/2"),
    "https://c.example/v1/events?x=1&write_key=wk+1%2F2",
  );
});

/** A sender over `storage` (null: memory only) whose posts get `answers` ([status], 202
 * once they run out), with the requests' inits and the beacons' bodies recorded. */
function beaconHarness(answers, storage = null, pageId = "p") {
  const outbox = new Outbox({ storage, pageId, max: 100, now: () => 1e9 });
  const inits = [];
  const beacons = [];
  const env = {
    fetch: async (url, init) => {
      inits.push(init);
      const [status] = answers.shift() ?? [202];
      if (status === 0) throw new TypeError("Failed to fetch");
      return { status, headers: new Map(), json: async () => ({}) };
    },
    beacon: (url, data) => beacons.push(JSON.parse(data)) > 0,
    setTimeout: () => {},
    clearTimeout: () => {},
    now: () => 1e9,
    random: () => 1,
  };
  const sender = new Sender({ endpoint: "http://c/v1/events", outbox, batchSize: 20, flushMs: 1000, env });
  sender.enabled = true;
  return { outbox, sender, inits, beacons };
}

function keepaliveHarness(bodyText, answers) {
  const h = beaconHarness(answers);
  for (let i = 0; i < 10; i++) h.outbox.add({ id: `e${i}`, body: { event_id: `e${i}`, text: bodyText } });
  return h;
}

test("keepalive and the beacon are sized in UTF-8 bytes, not characters", async () => {
  // 10 events of 4,000 CJK characters: ~40,000 characters, ~120,000 bytes. Sent as a
  // keepalive request, Chromium refused it every time and the queue never moved.
  const cjk = "漢".repeat(4000);
  const h = keepaliveHarness(cjk, []);
  await h.sender.flush();
  assert.equal(h.inits[0].keepalive, false);
  assert.equal(h.outbox.size, 0);

  const b = keepaliveHarness(cjk, []);
  b.sender.beacon();
  assert.equal(b.beacons[0].length, 4, "what fits in 60,000 bytes: 4 events of 12,000");
  assert.equal(b.outbox.size, 6);
});

test("an event too big for the beacon does not hold back the events after it", () => {
  // Found by a new user: the beacon stopped at the first item that did not fit, so a page
  // closed with an 80 KB event first sent none of the events behind it.
  const h = beaconHarness([]);
  h.outbox.add({ id: "big", body: { event_id: "big", text: "x".repeat(80000) } });
  h.outbox.add({ id: "small", body: { event_id: "small" } });
  h.sender.beacon();
  assert.deepEqual(h.beacons, [[{ event_id: "small" }]]);
  assert.deepEqual(h.outbox.peek(10).map((i) => i.id), ["big"]);
});

test("after a keepalive request fails, the retry goes without keepalive", async () => {
  const h = keepaliveHarness("x", [[0]]);
  await h.sender.flush();
  assert.equal(h.inits[0].keepalive, true);
  h.sender.notBefore = 0;
  await h.sender.flush();
  assert.equal(h.inits[1].keepalive, false);
  assert.equal(h.outbox.size, 0);
  h.outbox.add({ id: "z", body: { event_id: "z" } });
  await h.sender.flush();
  assert.equal(h.inits[2].keepalive, true, "after a success, keepalive again");
});

test("no beacon while the collector is known to be failing, back-off over or not", async () => {
  const h = keepaliveHarness("x", [[503]]);
  await h.sender.flush();
  h.sender.notBefore = 0; // the back-off is over, a retry may be in flight
  h.sender.beacon();
  assert.deepEqual(h.beacons, []);
  assert.equal(h.outbox.size, 10, "kept for the next page");
});

test("a retry timer that fires before the page's clock reaches the back-off still sends", async () => {
  // setTimeout runs on the monotonic clock, Date.now() on the wall clock: a wall clock
  // slewed by NTP runs slower, and the timer set for the end of a back-off fires while
  // now() is still a millisecond short of it. The flush it runs must wait again, not
  // return and leave the queue with no timer until the page tracks something else.
  const h = harness([[0]]);
  await h.sender.flush();
  assert.equal(h.timers.at(-1).ms, 1000);
  h.advance(999);
  const timersBefore = h.timers.length;
  h.timers.at(-1).fn();
  await Promise.resolve();
  assert.equal(h.requests.length, 1, "no attempt before the back-off ends");
  assert.equal(h.timers.length, timersBefore + 1, "a timer for the rest of the back-off");
  assert.equal(h.timers.at(-1).ms, 1);
  h.advance(1);
  h.timers.at(-1).fn();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(h.requests.length, 2);
  assert.equal(h.outbox.size, 1);
});

test("a page after one that found the collector failing sends no beacon either", async () => {
  // Found by a new user: page A failed and left its events in storage; page B, left after
  // 400 ms (before its own first attempt), adopted them and handed all of them to a beacon
  // that went nowhere. What a page learns of the collector's failure is kept with the
  // queue, for the pages after it, until a post succeeds.
  const storage = new Map();
  const local = {
    getItem: (k) => (storage.has(k) ? storage.get(k) : null),
    setItem: (k, v) => storage.set(k, String(v)),
    removeItem: (k) => storage.delete(k),
    key: (i) => [...storage.keys()][i] ?? null,
    get length() {
      return storage.size;
    },
  };
  const page = (answers) => beaconHarness(answers, local, `p${storage.size}`);
  const a = page([[0]]);
  a.outbox.add({ id: "a1", body: { event_id: "a1" } });
  await a.sender.flush();
  a.sender.beacon();
  assert.deepEqual(a.beacons, []);
  const b = page([]);
  b.outbox.add({ id: "b1", body: { event_id: "b1" } });
  b.sender.beacon(); // left before its first attempt
  assert.deepEqual(b.beacons, [], "the collector was failing for the page before");
  await b.sender.flush(); // later, a post of this site succeeds...
  assert.equal(b.outbox.size, 0);
  const c = page([]);
  c.outbox.add({ id: "c1", body: { event_id: "c1" } });
  c.sender.beacon();
  assert.deepEqual(c.beacons, [[{ event_id: "c1" }]], "...and pages beacon again");
});

test("a 401 or 403 is said on the console once, and everything is kept", async () => {
  const h = harness([[401, {}, {}], [401, {}, {}]]);
  const said = [];
  h.sender.env.report = (message) => said.push(message);
  await h.sender.flush();
  h.advance(60000);
  await h.sender.flush();
  assert.equal(h.outbox.size, 4);
  // The page's report starts every message with "streamlearn: " (index.js).
  assert.deepEqual(said, ["collector answered 401; kept"]);
});

test("a request nobody answers is given up after 30 s and retried as an unreachable one", async () => {
  // Found by review: a collector (or a proxy) that accepted the request and never answered
  // left the page's only request in flight for good: nothing more was sent from that page.
  const asked = [];
  const timeout = AbortSignal.timeout;
  AbortSignal.timeout = (ms) => {
    asked.push(ms);
    return timeout.call(AbortSignal, ms);
  };
  try {
    const h = harness([]);
    const fetch = h.sender.env.fetch;
    let signal = null;
    h.sender.env.fetch = async (url, init) => {
      signal = init.signal;
      throw new DOMException("The operation timed out.", "TimeoutError"); // what its abort gives
    };
    await h.sender.flush();
    assert.deepEqual(asked, [30000]);
    assert.ok(signal instanceof AbortSignal);
    assert.equal(h.sender.inFlight, false);
    assert.equal(h.outbox.size, 4, "kept");
    assert.equal(h.timers.at(-1).ms, 1000, "retried as an unreachable collector is");
    h.sender.env.fetch = fetch;
    h.advance(1000);
    await h.sender.flush();
    assert.equal(h.outbox.size, 1);
  } finally {
    AbortSignal.timeout = timeout;
  }
});
