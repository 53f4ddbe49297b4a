// What the collector accepts, checked before an item is queued: it refuses a whole request
// for one bad item, and a beacon (the page closing) cannot read that answer, so one item it
// would refuse lost every event sent with it. Mirrors src/streamlearn/collector/mapping.py.

export const MAX_STRING = 8192; // characters of any text field (the collector's MAX_STRING)
export const FEEDBACK_KINDS = ["impression", "click", "conversion", "value", "dismiss"];

// Every browser that runs the tag's ES2020 (optional chaining: Chrome 80, Safari 13.1,
// Firefox 72) has TextEncoder: its fallback was dead bytes.
const encoder = new TextEncoder();

/** UTF-8 bytes of `text`: what browsers count against their 64 KiB keepalive budget. */
export function byteLength(text) {
  return encoder.encode(text).length;
}

/** `text` cut to MAX_STRING UTF-16 units (never more code points than the collector
 * counts), without splitting a surrogate pair (a lone half is text UTF-8 cannot hold). */
export function truncated(text) {
  if (text.length <= MAX_STRING) return text;
  let end = MAX_STRING;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}

/** Text with no lone surrogate (the collector refuses it: UTF-8 cannot hold one). */
function wellFormed(text) {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

// What the collector's Python calls white space (str.isspace), which is not JavaScript's
// trim(): that keeps U+001C..U+001F and U+0085 and removes U+FEFF. An event type of one
// U+0085 was queued, and the collector refused the beacon's whole request for it.
const BLANK = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

// (Positional flags, not an options object, and `required` left out when false: the tag's
// size goal counts their bytes.)
function checkText(value, field, required, bounded = true) {
  if (value === null || value === undefined) return required ? `${field} is required` : null;
  if (typeof value !== "string") return `${field} must be a string`;
  if (required && BLANK.test(value)) return `${field} must not be empty`;
  if (bounded && value.length > MAX_STRING) return `${field} is longer than ${MAX_STRING} characters`;
  if (!wellFormed(value)) return `${field} holds a lone surrogate (not Unicode text)`;
  return null;
}

/** ``body``'s map of strings ``field`` (properties, context): only the request's size
 * bounds its entries. */
function checkStrings(body, field) {
  for (const [key, value] of Object.entries(body[field] || {})) {
    const problem = checkText(key, `${field} key`, false, false)
      || checkText(value, `${field}.${key}`, false, false);
    if (problem) return problem;
  }
  return null;
}

/** Why the collector would refuse an event or feedback body the tag made, or null. */
export function problemOf(body) {
  const field = (name, required) => checkText(body[name], name, required);
  if ("request_id" in body) {
    if (!FEEDBACK_KINDS.includes(body.kind)) {
      return `feedback kind must be one of ${FEEDBACK_KINDS.join(", ")}, got ${JSON.stringify(body.kind)}`;
    }
    if (body.value !== null && !Number.isFinite(body.value)) return "feedback value must be a finite number";
    return field("request_id", true)
      || field("user_id")
      || checkStrings(body, "properties");
  }
  return field("event_type", true)
    || field("user_id", true)
    || field("session_hint")
    || field("app_version")
    || checkStrings(body, "properties")
    || checkStrings(body, "context");
}
