// The events waiting to be sent, oldest first, bounded, and mirrored to localStorage so a
// page closed while the collector is unreachable hands them to the next page of the site.
//
// Each page keeps its own storage key (two tabs must not overwrite each other's queue); a
// page adopts the keys of pages that stopped writing, i.e. were closed. A page that was
// merely idle and is adopted sends its events twice at worst: same event ids, so the
// pipeline's dedup drops the copies. Nothing is lost either way.

export const KEY_PREFIX = "streamlearn.outbox.";
// Where a page says the collector failed it (sender.js), kept beside the queues.
export const FAILING_KEY = "streamlearn.failing";
// A page rewrites its key at least this often while it has events.
export const HEARTBEAT_MS = 5000;
// A write is the whole queue, on the page's main thread: 12 ms at 500 events in Chromium.
// Events added within this long share one write (removals and a page being hidden or
// closed write at once), so a page whose collector is unreachable is not slowed by each
// click. Only a crash within it loses what it held, which the page had not sent either.
export const SAVE_MS = 1000;

export class Outbox {
  constructor({ storage, pageId, max, now = Date.now }) {
    this.storage = storage; // null: memory only (no consent for storage, or none available)
    this.key = KEY_PREFIX + pageId;
    this.max = max;
    this.now = now;
    this.items = []; // {id, body}
    this.droppedTotal = 0; // events pushed out by the bound on this page so far
  }

  get size() {
    return this.items.length;
  }

  add(item) {
    this.items.push(item);
    this.trim();
    this.saving ||= setTimeout(() => this.save(), SAVE_MS);
  }

  /** The oldest `count` items, left in place until `remove` confirms them. */
  peek(count) {
    return this.items.slice(0, count);
  }

  remove(ids) {
    const gone = new Set(ids);
    const before = this.items.length;
    this.items = this.items.filter((item) => !gone.has(item.id));
    if (this.items.length !== before) this.save();
  }

  /** Take over the events of closed pages (keys not rewritten for two heartbeats). */
  adoptOrphans() {
    if (!this.storage) return 0;
    const stale = this.now() - 2 * HEARTBEAT_MS;
    let adopted = 0;
    for (const key of this.keys()) {
      if (key === this.key) continue;
      const saved = this.read(key);
      if (saved && saved.at > stale) continue;
      this.storage.removeItem(key);
      if (!saved) continue;
      const known = new Set(this.items.map((item) => item.id));
      const fresh = saved.items.filter((item) => item && item.id && !known.has(item.id));
      this.items = fresh.concat(this.items);
      adopted += fresh.length;
    }
    this.trim();
    this.save();
    return adopted;
  }

  /** Change every queued body in place with `change` (consent given: new ids), and save. */
  update(change) {
    for (const item of this.items) change(item.body);
    this.save();
  }

  /** Start mirroring (consent given later): what is in memory is written now. */
  attach(storage) {
    this.storage = storage;
    this.save();
  }

  /** Forget everything, in memory and in storage (consent refused); `all`: every page's
   * queue and what the tag keeps beside them (consent withdrawn). */
  clear(all = false) {
    this.items = [];
    if (!this.storage) return;
    const keys = all ? this.keys() : [this.key];
    if (all) keys.push(FAILING_KEY);
    for (const key of keys) this.storage.removeItem(key);
  }

  trim() {
    const over = this.items.length - this.max;
    if (over > 0) {
      this.items.splice(0, over);
      this.droppedTotal += over;
    }
  }

  /** The page is closing: mark its events as free for the next page to adopt at once. */
  release() {
    this.save(0);
  }

  save(at = this.now()) {
    // This write takes the pending one's place (clearTimeout gives undefined: none pending).
    this.saving = clearTimeout(this.saving);
    if (!this.storage) return;
    try {
      if (!this.items.length) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify({ at, items: this.items }));
    } catch {
      // Storage full or refused (private mode): the queue stays in memory.
    }
  }

  keys() {
    const keys = [];
    for (let i = 0; i < this.storage.length; i++) {
      const key = this.storage.key(i);
      if (key && key.startsWith(KEY_PREFIX)) keys.push(key);
    }
    return keys;
  }

  read(key) {
    try {
      const saved = JSON.parse(this.storage.getItem(key));
      return saved && Array.isArray(saved.items) ? saved : null;
    } catch {
      return null;
    }
  }
}
