import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULTS, checkedOptions, optionsFromAttributes } from "../src/options.js";

function check(options) {
  const said = [];
  return [checkedOptions(options, (message) => said.push(message)), said];
}

test("a consent setting the tag cannot read asks for consent, and says so", () => {
  for (const typo of ["Required", "true", "yes", "", null, true]) {
    const [options, said] = check({ consent: typo });
    assert.equal(options.consent, "required", String(typo));
    assert.equal(said.length, 1);
    assert.match(said[0], /^consent must be "required" or "not-required"/); // the page prefixes it
  }
  assert.deepEqual(check({ consent: "not-required" }), [{ consent: "not-required" }, []]);
  assert.deepEqual(check({ consent: "required" }), [{ consent: "required" }, []]);
});

test("arms that are not an object of strings are refused, not used", () => {
  for (const arms of [null, [], "b", { e: 1 }]) {
    const [options, said] = check({ arms });
    assert.deepEqual(options.arms, {});
    assert.match(said[0], /arms must be a JSON object of strings/);
  }
  const [fromText, said] = check(optionsFromAttributes({ arms: "{not json" }));
  assert.deepEqual(fromText.arms, {});
  assert.match(said[0], /not "\{not json"/);
  assert.deepEqual(check({ arms: { e: "b" } }), [{ arms: { e: "b" } }, []]);
});

test("numbers out of their range fall back to the default", () => {
  const cases = [
    ["batchSize", "0"], ["batchSize", "abc"], ["batchSize", "-1"], ["batchSize", "2.5"],
    ["maxQueue", "0"], ["flushMs", "-5"], ["impressionThreshold", "0"],
    ["impressionThreshold", "1.5"], ["sessionMinutes", "0"], ["userCookieDays", ""],
  ];
  for (const [name, text] of cases) {
    const [options, said] = check(optionsFromAttributes({ [name]: text }));
    assert.equal(options[name], DEFAULTS[name], `${name}=${text}`);
    assert.equal(said.length, 1, `${name}=${text}`);
  }
  assert.deepEqual(check(optionsFromAttributes({ batchSize: "5", impressionThreshold: "1" })), [
    { batchSize: 5, impressionThreshold: 1 },
    [],
  ]);
});

test("a switch takes true or false only", () => {
  const [options, said] = check(optionsFromAttributes({ pageView: "0" }));
  assert.equal(options.pageView, true);
  assert.match(said[0], /pageView must be true or false/);
  assert.deepEqual(check(optionsFromAttributes({ pageView: "false" })), [{ pageView: false }, []]);
});

test("an endpoint that is no http(s) URL is said and the default used", () => {
  // Found by a new user: data-endpoint="http://[collector/v1/events" stopped the tag, and
  // every later call threw into the site's code.
  for (const endpoint of ["http://[collector/v1/events", "javascript:alert(1)", 42]) {
    const [options, said] = check({ endpoint });
    assert.equal(options.endpoint, null, String(endpoint));
    assert.match(said[0], /endpoint must be an http\(s\) URL/);
  }
  for (const endpoint of ["https://c.example/v1/events", "/v1/events", "//c.example/v1/events"]) {
    assert.deepEqual(check({ endpoint }), [{ endpoint }, []]);
  }
});

test("a do-not-track setting the tag cannot read honours the browser's signal", () => {
  // "yes" fell back to false: the site that meant to ask had its visitors tracked.
  const [options, said] = check(optionsFromAttributes({ honorDoNotTrack: "yes" }));
  assert.equal(options.honorDoNotTrack, true);
  assert.match(said[0], /honorDoNotTrack must be true or false/);
});

test("a number attribute that is no number is said as written", () => {
  // It said `not null` (JSON of NaN) for data-flush-ms="abc".
  const [options, said] = check(optionsFromAttributes({ flushMs: "abc" }));
  assert.equal(options.flushMs, DEFAULTS.flushMs);
  assert.match(said[0], /flushMs must be a number at least 0, not "abc"/);
});
