import assert from "node:assert/strict";
import { test } from "node:test";

import { cookieDomainFits } from "../src/page.js";

test("a cookie domain fits its own host and its subdomains only", () => {
  for (const [domain, host] of [
    [".shop.example", "shop.example"],
    ["shop.example", "www.shop.example"],
    [".Shop.Example", "m.shop.example"],
    ["127.0.0.1", "127.0.0.1"],
  ]) {
    assert.equal(cookieDomainFits(domain, host), true, `${domain} on ${host}`);
  }
  // The browser drops these cookies without a word: a new user on every page load.
  for (const [domain, host] of [
    [".shop.example", "127.0.0.1"],
    [".shop.example", "staging.shop-example.net"],
    ["shop.example", "myshop.example"],
    [".", "shop.example"],
    ["", "shop.example"],
  ]) {
    assert.equal(cookieDomainFits(domain, host), false, `${domain} on ${host}`);
  }
});
