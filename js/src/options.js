// The tag's options: their defaults, how data-* attributes are read, and the check every
// option passes before the tag uses it. A value the tag cannot use is said on the console
// and replaced by the safe one (consent: "required"), never used as it came: a mistyped
// consent setting turned the consent gate off, and `data-arms="null"` stopped the tag.

export const DEFAULTS = {
  endpoint: null, // default: /v1/events on the origin the tag was loaded from
  writeKey: null, // the collector's write key for this site, sent as ?write_key=
  appVersion: null, // required: the collector refuses events without one
  userId: null, // the site's own id for a signed-in user; else the cookie's
  userCookie: "sl_uid", // false: no cookie, a new id per page load
  userCookieDays: 365,
  sessionCookie: "sl_sid", // false: no session hint
  sessionMinutes: 30,
  cookieDomain: null,
  consent: "not-required", // "required": nothing stored or sent before streamlearn('consent', true)
  honorDoNotTrack: false, // true: a browser with DNT or GPC on is not tracked at all
  pageView: true,
  impressionThreshold: 0.5,
  impressionMs: 1000,
  batchSize: 20,
  flushMs: 1000,
  maxQueue: 500,
  arms: {}, // experiment → arm the page was rendered with
};

const CONSENT = ["required", "not-required"];
// Numbers: the least each may be, whether that least is allowed, whether it must be whole.
const NUMBERS = {
  userCookieDays: [0, false, false],
  sessionMinutes: [0, false, false],
  impressionThreshold: [0, false, false], // and at most 1
  impressionMs: [0, true, false],
  flushMs: [0, true, false],
  batchSize: [1, true, true],
  maxQueue: [1, true, true],
};

function parseArms(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text; // refused by checkedOptions, which says so
  }
}

/** data-app-version="x" → {appVersion: "x"}, with numbers, booleans and JSON read as such. */
export function optionsFromAttributes(dataset) {
  const options = {};
  for (const [name, text] of Object.entries(dataset || {})) {
    if (!(name in DEFAULTS)) continue;
    const kind = typeof DEFAULTS[name];
    if (text === "false" || text === "true") options[name] = text === "true";
    else if (kind === "number") {
      // Text that is no number stays text: the console then says what was written.
      const number = text.trim() === "" ? NaN : Number(text);
      options[name] = Number.isNaN(number) ? text : number;
    }
    else if (name === "arms") options[name] = parseArms(text);
    else options[name] = text;
  }
  return options;
}

function isArms(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.values(value).every((arm) => typeof arm === "string")
  );
}

/** The problem with ``value`` as option ``name``, or null when the tag can use it. */
function problem(name, value) {
  if (name === "consent") {
    return CONSENT.includes(value) ? null : `must be "required" or "not-required"`;
  }
  if (name === "arms") return isArms(value) ? null : "must be a JSON object of strings";
  if (name in NUMBERS) {
    const [least, orEqual, whole] = NUMBERS[name];
    const most = name === "impressionThreshold" ? 1 : Infinity;
    const fits =
      typeof value === "number" &&
      Number.isFinite(value) &&
      (orEqual ? value >= least : value > least) &&
      value <= most &&
      (!whole || Number.isInteger(value));
    if (fits) return null;
    const range = `${orEqual ? "at least" : "above"} ${least}${most < 1 / 0 ? ` and at most ${most}` : ""}`;
    return `must be ${whole ? "a whole number" : "a number"} ${range}`;
  }
  if (typeof DEFAULTS[name] === "boolean") {
    // honorDoNotTrack, pageView
    return typeof value === "boolean" ? null : 'must be true or false ("true" or "false")';
  }
  if (name === "endpoint" && value !== null && !isHttpUrl(value)) {
    return "must be an http(s) URL or path";
  }
  return null;
}

function isHttpUrl(value) {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value, "https://page.invalid/");
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false; // "http://[collector/v1/events" stopped the tag
  }
}

function safeValue(name) {
  // An unreadable consent or do-not-track setting means the site wanted one: ask for
  // consent, honour the browser's signal.
  if (name === "consent") return "required";
  if (name === "honorDoNotTrack") return true;
  return DEFAULTS[name];
}

/**
 * ``options`` with each value the tag cannot use replaced by its safe one, said through
 * ``report`` (console.error on a page); unknown names are left out.
 */
export function checkedOptions(options, report) {
  const checked = {};
  for (const [name, value] of Object.entries(options || {})) {
    if (!(name in DEFAULTS)) continue;
    const wrong = problem(name, value);
    if (wrong === null) {
      checked[name] = value;
      continue;
    }
    const safe = safeValue(name);
    report(`${name} ${wrong}, not ${JSON.stringify(value)}; using ${JSON.stringify(safe)}`);
    checked[name] = safe;
  }
  return checked;
}
