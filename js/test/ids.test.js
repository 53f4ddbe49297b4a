import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { test } from "node:test";
import { uuid4 } from "../src/ids.js";

test("without randomUUID (http pages) the id is still a random version 4 UUID", () => {
  const crypto = { getRandomValues: (array) => webcrypto.getRandomValues(array) };
  const ids = new Set(Array.from({ length: 1000 }, () => uuid4(crypto)));
  assert.equal(ids.size, 1000);
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  // Every variant digit and every hex digit elsewhere turns up (none is fixed by mistake).
  assert.deepEqual(new Set([...ids].map((id) => id[19])), new Set(["8", "9", "a", "b"]));
  assert.equal(new Set([...ids].map((id) => id[0])).size, 16);
});
