// What the page knows at logging time, as the strings the collector's `context` map holds,
// and the first-party cookies for the user id and the session hint.

/** Context of an event made now: viewport, pixel ratio, connection, time zone, arms. */
export function pageContext(win, arms, version) {
  const context = {
    viewport: `${win.innerWidth}x${win.innerHeight}`,
    dpr: String(win.devicePixelRatio || 1),
    tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "",
    language: win.navigator.language || "",
    tag: version,
  };
  const connection = win.navigator.connection;
  if (connection?.effectiveType) context.connection = connection.effectiveType;
  for (const [experiment, arm] of Object.entries(arms)) context[`arm.${experiment}`] = String(arm);
  return context;
}

/** Properties as the collector accepts them: an object of strings. Numbers, booleans and
 * big integers as their text (NaN as "NaN", not JSON's "null"), objects as JSON; functions
 * and symbols are left out, said on the console (`report`). Never throws into the page. */
export function strings(properties, report = () => {}) {
  const out = {};
  for (const [key, value] of Object.entries(properties || {})) {
    if (value === undefined || value === null) continue;
    const kind = typeof value;
    if (kind === "string") out[key] = value;
    else if (kind === "number" || kind === "boolean" || kind === "bigint") out[key] = String(value);
    else if (kind === "function" || kind === "symbol") report(`property ${key} left out: a ${kind} has no text`);
    else {
      try {
        out[key] = JSON.stringify(value);
      } catch {
        out[key] = String(value); // a cycle, a big integer inside
      }
    }
  }
  return out;
}

export function readCookie(doc, name) {
  for (const part of doc.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key !== name) continue;
    try {
      return decodeURIComponent(value.join("="));
    } catch {
      return null; // not one the tag wrote (a bad escape): a new one replaces it
    }
  }
  return null;
}

export function writeCookie(doc, name, value, maxAgeS, domain) {
  const secure = doc.location?.protocol === "https:" ? "; Secure" : "";
  const scope = domain ? `; Domain=${domain}` : "";
  doc.cookie = `${name}=${encodeURIComponent(value)}; Max-Age=${maxAgeS}; Path=/; SameSite=Lax${scope}${secure}`;
}

/** Whether a cookie for ``domain`` can be set on a page of ``hostname``: the host is the
 * domain or one of its subdomains. A browser drops any other cookie without a word. */
export function cookieDomainFits(domain, hostname) {
  const wanted = `.${domain}`.toLowerCase().replace(/^\.\./, ".");
  return wanted !== "." && `.${hostname}`.endsWith(wanted);
}

/** Do-Not-Track or Global Privacy Control switched on in this browser. */
export function optedOut(win) {
  const nav = win.navigator;
  return nav.globalPrivacyControl === true || nav.doNotTrack === "1" || win.doNotTrack === "1";
}
