// Event ids are made in the browser, so a batch sent twice (a retry after a lost answer, a
// beacon and a later page's resend) is the same events twice, and the pipeline's dedup keeps
// one of each.

/** A random (version 4) UUID; `crypto.randomUUID` exists only on https pages. */
export function uuid4(crypto = globalThis.crypto) {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Each 0 and 1 becomes a random hex digit, each 8 one of 8-b (the variant, 10xx in binary).
  return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
    (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
  );
}
