import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_STRING, byteLength, problemOf, truncated } from "../src/items.js";
import { strings } from "../src/page.js";

const event = (fields) => ({
  event_id: "e",
  event_type: "page_view",
  user_id: "u",
  session_hint: null,
  app_version: "w",
  properties: {},
  context: {},
  ...fields,
});
const feedback = (fields) => ({
  request_id: "r",
  event_id: "e",
  kind: "click",
  value: null,
  user_id: "u",
  properties: {},
  ...fields,
});

test("what the collector would refuse is found before it is queued", () => {
  assert.equal(problemOf(event({})), null);
  assert.equal(problemOf(feedback({})), null);
  assert.equal(problemOf(feedback({ kind: "conversion", value: 9.99 })), null);
  assert.match(problemOf(feedback({ kind: "purchase" })), /feedback kind must be one of impression, click/);
  assert.match(problemOf(feedback({ value: NaN })), /finite/);
  assert.match(problemOf(feedback({ request_id: " " })), /request_id must not be empty/);
  assert.match(problemOf(event({ event_type: "" })), /event_type must not be empty/);
  assert.match(problemOf(event({ session_hint: "x".repeat(MAX_STRING + 1) })), /session_hint is longer than 8192/);
  assert.equal(problemOf(event({ properties: { q: "x".repeat(MAX_STRING + 1) } })), null, "only the body bounds a map");
  assert.match(problemOf(event({ properties: { q: "a\ud800b" } })), /lone surrogate/);
  assert.equal(problemOf(event({ properties: { q: "😀" } })), null);
});

test("text is cut to the collector's limit without splitting a surrogate pair", () => {
  assert.equal(truncated("abc"), "abc");
  assert.equal(truncated("x".repeat(MAX_STRING + 5)).length, MAX_STRING);
  const emoji = "x".repeat(MAX_STRING - 1) + "😀";
  const cut = truncated(emoji);
  assert.equal(cut, "x".repeat(MAX_STRING - 1), "the pair is left out whole");
  assert.equal(problemOf(event({ url: cut })), null);
});

test("bytes are UTF-8 bytes", () => {
  assert.equal(byteLength("abc"), 3);
  assert.equal(byteLength("漢"), 3);
  assert.equal(byteLength("😀"), 4);
});

test("odd property values become text and never throw into the page", () => {
  const said = [];
  const out = strings(
    { big: 12n, nan: NaN, inf: -Infinity, flag: true, n: 2, fn: () => 1, sym: Symbol("s"), obj: { a: [1] }, none: null },
    (message) => said.push(message),
  );
  assert.deepEqual(out, { big: "12", nan: "NaN", inf: "-Infinity", flag: "true", n: "2", obj: '{"a":[1]}' });
  assert.equal(said.length, 2);
  const cyclic = {};
  cyclic.self = cyclic;
  assert.equal(strings({ c: cyclic }).c, "[object Object]");
});
