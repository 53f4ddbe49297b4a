// Impressions and clicks of the elements a prediction filled: marked with
// data-streamlearn-request-id (the id the prediction worker answered with). Watched for the
// page's life (the tag never stops watching, so nothing here is undone).
//
// An impression is sent once per request id, when at least `threshold` of the element has
// been visible for `dwellMs` without interruption; scrolled away earlier, it is not seen.
// An element taller than the viewport needs `threshold` of what of it fits (half of a list
// twice the window's height can never show at once, and one filling the window was seen);
// nothing counts while the page is hidden.

export const ATTRIBUTE = "data-streamlearn-request-id";

export function watchImpressions(doc, win, { threshold, dwellMs, onImpression }) {
  if (!win.IntersectionObserver) return;
  const seen = new Set();
  const timers = new Map();
  // A dwell begun for the element stops: it does not count.
  const stop = (element) => {
    win.clearTimeout(timers.get(element));
    timers.delete(element);
  };
  const observer = new win.IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const element = entry.target;
        const requestId = element.getAttribute(ATTRIBUTE);
        if (!requestId || seen.has(requestId)) continue;
        // (No root bounds in some cross-origin frames, no height: the share is `threshold`.)
        const fits = entry.rootBounds?.height / entry.boundingClientRect.height || 1;
        if (
          entry.isIntersecting &&
          entry.intersectionRatio >= threshold * Math.min(1, fits) &&
          !doc.hidden
        ) {
          if (timers.has(element)) continue;
          timers.set(
            element,
            win.setTimeout(() => {
              timers.delete(element);
              if (seen.has(requestId)) return;
              seen.add(requestId);
              observer.unobserve(element);
              onImpression(element, requestId);
            }, dwellMs),
          );
        } else stop(element);
      }
    },
    // Told at every hundredth of the element, so it is told when a tall one's share shows.
    { threshold: Array.from(Array(101), (_, i) => i / 100) },
  );
  const observeUnder = (root) => {
    if (root.nodeType !== 1) return;
    if (root.hasAttribute(ATTRIBUTE)) observer.observe(root);
    for (const element of root.querySelectorAll(`[${ATTRIBUTE}]`)) observer.observe(element);
  };
  observeUnder(doc.documentElement);
  // Watched afresh: observed anew, the observer says again where the element is.
  const rewatch = (element) => {
    stop(element);
    observer.unobserve(element);
    if (element.hasAttribute(ATTRIBUTE)) observer.observe(element);
  };
  // A hidden page (another tab, the screen locked) shows nothing, though the observer,
  // which the browser stops updating, still says its elements are in view: a dwell begun
  // stops, and every element is looked at afresh when the page is shown again.
  doc.addEventListener("visibilitychange", () => {
    for (const element of doc.querySelectorAll(`[${ATTRIBUTE}]`)) rewatch(element);
  });
  // Pages that render predictions after load (single-page apps, lazy lists), and elements
  // given a new prediction in place (frameworks reuse nodes): the element is watched again
  // for the new request id, and a dwell begun for the old one does not count.
  const mutations = new win.MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "attributes") {
        rewatch(record.target);
      } else {
        for (const node of record.addedNodes) observeUnder(node);
      }
    }
  });
  mutations.observe(doc.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: [ATTRIBUTE],
  });
}

export function watchClicks(doc, onClick) {
  const listener = (event) => {
    // A middle click (auxclick, button 1) opens a link in a new tab: the shopper chose it.
    // A right click (button 2) opens the context menu, not the recommendation.
    if (event.button > 1) return;
    const element = event.target?.closest?.(`[${ATTRIBUTE}]`); // (not the document's own)
    if (element) onClick(element, element.getAttribute(ATTRIBUTE));
  };
  // Capture: a click handler that stops propagation must not hide the click.
  doc.addEventListener("click", listener, true);
  doc.addEventListener("auxclick", listener, true);
}
