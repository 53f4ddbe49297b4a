// streamlearn.js: page views, impressions, clicks and custom events from a web page to the
// streamlearn collector. Configured by the script element's data-* attributes and by
// commands queued before it loaded: streamlearn('init' | 'set' | 'track' | 'pageview' |
// 'feedback' | 'consent' | 'flush', ...). docs/browser.md lists every option.

import { uuid4 } from "./ids.js";
import { watchClicks, watchImpressions } from "./observe.js";
import { MAX_STRING, problemOf, truncated } from "./items.js";
import { HEARTBEAT_MS, Outbox } from "./outbox.js";
import { DEFAULTS, checkedOptions, optionsFromAttributes } from "./options.js";
import { cookieDomainFits, optedOut, pageContext, readCookie, strings, writeCookie } from "./page.js";
import { Sender, withWriteKey } from "./sender.js";

// __VERSION__ is replaced by the build (build.mjs) with the package version.
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";

function storageOf(win) {
  try {
    const storage = win.localStorage;
    storage.getItem("streamlearn.probe");
    return storage;
  } catch {
    return null; // disabled, or a sandboxed frame
  }
}

export function createTracker(win, script) {
  const doc = win.document;
  // Every message the tag says starts so (one prefix here, not one per message).
  const report = (message) => win.console?.error(`streamlearn: ${message}`);
  const checked = (options) => checkedOptions(options, report);
  const config = { ...DEFAULTS, ...checked(optionsFromAttributes(script?.dataset)) };
  const pageId = uuid4();
  let consent = "unknown"; // "granted" | "denied"
  let started = false;
  let disabled = false;
  let outbox = null;
  let sender = null;
  let pageUserId = pageId;

  const allowedToStore = () => config.consent !== "required" || consent === "granted";

  function userId() {
    if (config.userId) return String(config.userId);
    if (!config.userCookie || !allowedToStore()) return pageUserId;
    let id = readCookie(doc, config.userCookie);
    if (!id) id = pageUserId;
    writeCookie(doc, config.userCookie, id, config.userCookieDays * 86400, config.cookieDomain);
    pageUserId = id;
    return id;
  }

  function sessionHint() {
    if (!config.sessionCookie) return null;
    if (!allowedToStore()) return pageId;
    // Renewed by every event: the hint changes after sessionMinutes without one.
    const hint = readCookie(doc, config.sessionCookie) || uuid4();
    writeCookie(doc, config.sessionCookie, hint, config.sessionMinutes * 60, config.cookieDomain);
    return hint;
  }

  // A number is the id's text; undefined stays so, and is refused as missing (an id of
  // "undefined" was sent, which label-join can never join).
  const text = (value) => (value == null ? value : String(value));
  let versionMissingSaid = false;
  let refusedHere = 0; // items refused before they were queued (said on the console)

  function enqueue(body) {
    if (consent === "denied") return;
    if (!body.app_version && !versionMissingSaid) {
      versionMissingSaid = true;
      report("appVersion is not set: the collector refuses events without one");
    }
    // What the collector would refuse is refused here, where the caller hears why: sent, it
    // would be refused with every event of its request, and a beacon cannot say which.
    const problem = problemOf(body);
    if (problem) {
      refusedHere += 1;
      report(`not sent: ${problem}`);
      return;
    }
    outbox.add({ id: body.event_id, body });
    sender.schedule();
  }

  function event(type, properties) {
    if (disabled) return;
    const context = pageContext(win, config.arms, VERSION);
    // Events the bounded queue gave up on this page so far (those this one pushes out
    // included), on every later event: one carrying it may be given up too, so the count
    // rides on each, and the largest value that arrives is the page's count.
    const dropped = outbox.droppedTotal + Math.max(0, outbox.size + 1 - outbox.max);
    if (dropped > 0) context.dropped = String(dropped);
    const url = win.location.href;
    const referrer = doc.referrer || null;
    // Over the collector's limit, the page's own addresses are cut (said in the context),
    // not refused: the site cannot choose them, and its events must still arrive.
    if (url.length > MAX_STRING || (referrer && referrer.length > MAX_STRING)) context.truncated = "url";
    enqueue({
      event_id: uuid4(),
      event_type: text(type),
      user_id: userId(),
      session_hint: sessionHint(),
      client_ts: Date.now(),
      url: truncated(url),
      referrer: referrer && truncated(referrer),
      app_version: config.appVersion,
      properties: strings(properties, report),
      context,
    });
  }

  function feedback(requestId, kind, value, properties) {
    if (disabled) return;
    enqueue({
      request_id: text(requestId),
      event_id: uuid4(),
      kind,
      // Anything but a number is refused (said on the console), not sent as null.
      value: value === undefined || value === null ? null : value,
      user_id: userId(),
      client_ts: Date.now(),
      app_version: config.appVersion,
      properties: strings(properties, report),
    });
  }

  /** Consent given: events held before it carry the page's temporary ids; they take the
   * cookies' now (a returning visitor's cookie id, not a throwaway one). */
  function restampHeld(temporaryUserId) {
    const user = userId();
    const hint = sessionHint();
    outbox.update((body) => {
      if (body.user_id === temporaryUserId) body.user_id = user;
      if ("session_hint" in body && body.session_hint === pageId) body.session_hint = hint;
    });
  }

  function slotProperties(element) {
    const slot = element.getAttribute("data-streamlearn-slot");
    return slot ? { slot } : {};
  }

  function start() {
    started = true;
    const host = win.location.hostname;
    if (config.cookieDomain && !cookieDomainFits(config.cookieDomain, host)) {
      // The browser would drop every cookie of the tag's without a word: each page load a
      // new user, each event a new session. The page's own host works wherever it runs.
      report(`cookieDomain ${config.cookieDomain} is not ${host}'s: not used`);
      config.cookieDomain = null;
    }
    if (config.honorDoNotTrack && optedOut(win)) {
      disabled = true;
      return;
    }
    const endpoint = withWriteKey(
      config.endpoint
        ? new URL(config.endpoint, win.location.href).href
        : new URL("/v1/events", script?.src || win.location.href).href,
      config.writeKey,
    );
    const storage = allowedToStore() ? storageOf(win) : null;
    outbox = new Outbox({ storage, pageId, max: config.maxQueue });
    outbox.adoptOrphans();
    sender = new Sender({
      endpoint,
      outbox,
      batchSize: config.batchSize,
      flushMs: config.flushMs,
      env: {
        report,
        fetch: (...args) => win.fetch(...args),
        // (No sendBeacon: undefined, a beacon not queued, and the events stay.)
        beacon: (url, data) => win.navigator.sendBeacon?.(url, data),
        setTimeout: (fn, ms) => win.setTimeout(fn, ms),
        clearTimeout: (id) => win.clearTimeout(id),
        now: Date.now,
        random: Math.random,
      },
    });
    sender.enabled = allowedToStore();
    watchImpressions(doc, win, {
      threshold: config.impressionThreshold,
      dwellMs: config.impressionMs,
      onImpression: (element, id) => feedback(id, "impression", null, slotProperties(element)),
    });
    watchClicks(doc, (element, id) => feedback(id, "click", null, slotProperties(element)));
    const hide = () => {
      sender.beacon();
      outbox.release();
    };
    win.addEventListener("pagehide", hide);
    doc.addEventListener("visibilitychange", () => {
      if (doc.visibilityState === "hidden") hide();
      else outbox.save();
    });
    win.addEventListener("pageshow", () => outbox.save());
    // Back online: try at once, not after the back-off the offline spell grew to a minute
    // (a page left meanwhile sends no beacon, the collector being known to fail).
    win.addEventListener("online", () => {
      sender.notBefore = 0;
      sender.schedule(0);
    });
    // The heartbeat: adopting orphans rewrites this page's key (one write of the queue).
    win.setInterval(() => {
      if (outbox.adoptOrphans() > 0) sender.schedule();
    }, HEARTBEAT_MS);
    if (config.pageView) event("page_view", { title: doc.title });
    sender.schedule();
  }

  const commands = {
    init(options) {
      if (started) {
        // Half of it would apply (appVersion), half not (batchSize, the consent gate):
        // events could go before the consent the late init asked for.
        report("'init' after load ignored: use 'set'");
        return;
      }
      Object.assign(config, checked(options));
    },
    set(options) {
      const changed = checked(options);
      for (const name of ["userId", "arms", "appVersion"]) {
        if (name in changed) config[name] = changed[name];
      }
    },
    track(type, properties) {
      event(type, properties);
    },
    pageview(properties) {
      event("page_view", { title: doc.title, ...properties });
    },
    feedback(requestId, kind, value, properties) {
      feedback(requestId, kind, value, properties);
    },
    consent(granted) {
      if (disabled) return;
      if (typeof granted !== "boolean") {
        // 'false' or 'no' granted consent (a non-empty string is truthy).
        report(`consent takes true or false, not ${JSON.stringify(granted)}`);
        return;
      }
      consent = granted ? "granted" : "denied";
      if (!granted) {
        // Withdrawn: what the tag wrote goes too (its cookies, and the queues of this
        // site's other pages), not only this page's queue.
        outbox.clear(true);
        for (const name of [config.userCookie, config.sessionCookie]) {
          if (name) writeCookie(doc, name, "", 0, config.cookieDomain);
        }
        sender.enabled = false;
        return;
      }
      const temporaryUserId = pageUserId;
      restampHeld(temporaryUserId); // a new visitor's page id becomes the cookie's
      const storage = storageOf(win);
      if (storage) outbox.attach(storage);
      sender.enabled = true;
      sender.schedule(0);
    },
    flush() {
      if (sender) sender.schedule(0);
    },
  };

  /** One command; what goes wrong is said on the console, never thrown into the site's
   * code (an unknown command queued before the tag loaded lost every command after it). */
  function run(name, ...args) {
    const command = {}.hasOwnProperty.call(commands, name) ? commands[name] : null;
    if (!command) {
      report(`unknown command ${JSON.stringify(name)}`);
      return;
    }
    if (!started && name !== "init") {
      report("not started");
      return;
    }
    try {
      command(...args);
    } catch (error) {
      report(`${name} failed: ${error}`);
    }
  }

  return {
    /** Apply the commands queued before the tag loaded ('init' first), then start. */
    boot(queued) {
      for (const args of queued) if (args[0] === "init") run(...args);
      start();
      for (const args of queued) if (args[0] !== "init") run(...args);
    },
    run,
    stats: () => ({
      queued: outbox ? outbox.size : 0,
      sent: sender ? sender.sent : 0,
      refused: (sender ? sender.refused : 0) + refusedHere,
      dropped: outbox ? outbox.droppedTotal : 0,
      disabled,
      version: VERSION,
    }),
  };
}

// Loaded as a classic script (async or not): find ourselves and take over the stub.
if (typeof window !== "undefined" && !window.streamlearn?.tracker) {
  const stub = window.streamlearn;
  const queued = stub?.q || [];
  const tracker = createTracker(window, document.currentScript);
  const api = (...args) => tracker.run(...args);
  api.tracker = tracker;
  api.stats = tracker.stats;
  window.streamlearn = api;
  tracker.boot(Array.from(queued, (args) => Array.from(args)));
}
