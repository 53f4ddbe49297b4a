/* streamlearn dashboard: renders the state /api/events streams (the whole state first,
   then a delta a second) with uPlot. No framework and no HTML strings: every node is
   built with createElement/textContent, which the page's CSP (Trusted Types, no inline
   script or style, no eval) requires. Colours come from the CSS variables, so the charts
   follow the light or dark theme. */
(function () {
  "use strict";

  const SECTIONS = ["models", "arms", "drift", "alerts", "processes", "status"];
  const STALE_AFTER_MS = 4000;
  const RETRY_CLOSED_MS = 3000; // a little over the Retry-After (2 s) of the dashboard's 503
  const MAX_DRIFT_CARDS = 60;
  const CHART_HEIGHT = 220;
  // A time chart's line breaks where its points are further apart than this many typical
  // steps (and at least a minute): a part that was stopped, or the last run of `up`,
  // is not joined to what came after it by a straight line.
  const BREAK_STEPS = 10;
  const BREAK_MIN_S = 60;

  const view = {
    state: null,
    skew: 0, // client clock minus server clock, seconds
    lastMessage: 0,
    charts: new Map(), // key -> {plot, container, signature, height}
    alertsSeen: null, // alert identities shown so far (null before the first state)
  };

  // ---------------------------------------------------------------- DOM and format helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const byId = (id) => document.getElementById(id);
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const formats = new Map();
  function numberFormat(digits) {
    if (!formats.has(digits)) {
      formats.set(digits, new Intl.NumberFormat("en-US", {
        minimumFractionDigits: digits, maximumFractionDigits: digits,
      }));
    }
    return formats.get(digits);
  }
  const fmt = (v, digits = 3) => (isNum(v) ? numberFormat(digits).format(v) : "–");
  const fmtInt = (v) => fmt(v, 0);
  const fmtRate = (v) => (isNum(v) ? (v >= 100 ? fmtInt(v) : fmt(v, 1)) + "/s" : "–");
  const fmtPct = (v) => (isNum(v) ? fmt(100 * v, 1) + "%" : "–");
  const serverNow = () => Date.now() / 1000 - view.skew;

  function ago(t) {
    if (!isNum(t)) return "–";
    const s = Math.max(0, serverNow() - t);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function clock(t) {
    return isNum(t) ? new Date(t * 1000).toLocaleTimeString([], { hour12: false }) : "–";
  }

  function lastValue(column) {
    for (let i = (column || []).length - 1; i >= 0; i--) if (isNum(column[i])) return column[i];
    return null;
  }

  function table(node, headers, rows) {
    const head = el("tr", null, ...headers.map((h) => el("th", { text: h })));
    const body = rows.map((cells) => el("tr", null, ...cells.map((cell) =>
      cell instanceof Node ? (cell.tagName === "TD" ? cell : el("td", null, cell)) : el("td", { text: cell }))));
    node.replaceChildren(el("thead", null, head), el("tbody", null, ...body));
  }

  // ---------------------------------------------------------------- charts

  function palette() {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    return {
      fg: v("--fg"), muted: v("--muted"), grid: v("--grid"), bad: v("--bad"), warn: v("--warn"),
      accent: v("--accent"), reference: v("--reference"),
      series: [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => v("--series-" + i)),
    };
  }

  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      for (const chart of view.charts.values()) {
        if (chart.container === entry.target) {
          const width = Math.floor(entry.contentRect.width);
          if (width > 0 && width !== chart.plot.width) chart.plot.setSize({ width, height: chart.height });
        }
      }
    }
  });

  function options(spec, width) {
    const p = palette();
    const axis = {
      stroke: p.muted,
      grid: { stroke: p.grid, width: 1 },
      ticks: { stroke: p.grid, width: 1 },
      font: "11px system-ui, sans-serif",
    };
    const series = [spec.xValue ? { label: spec.xLabel || "x", value: spec.xValue } : { label: spec.xLabel || "time" }];
    spec.series.forEach((s) => {
      const entry = {
        label: s.label,
        stroke: s.color,
        width: s.width || 1.5,
        scale: s.scale || "y",
        // Time charts: undefined (no value at that moment) is spanned, null (a break,
        // see withBreaks) is not. Other charts span their nulls.
        spanGaps: s.kind !== "bars" && spec.time === false,
        points: { show: false },
        value: s.value || ((u, v) => (isNum(v) ? fmt(v, s.digits === undefined ? 3 : s.digits) : "–")),
      };
      if (s.dash) entry.dash = s.dash;
      if (s.kind === "step") entry.paths = uPlot.paths.stepped({ align: 1 });
      if (s.kind === "bars") {
        entry.paths = uPlot.paths.bars({ size: [s.barShare || 0.85, s.barMax || 80] });
        entry.fill = s.color + "b0";
      }
      if (s.kind === "points") {
        entry.paths = () => null;
        entry.points = { show: true, size: 7, stroke: s.color, fill: s.color + "80" };
      }
      if (s.kind === "linepoints") entry.points = { show: true, size: 6, stroke: s.color, fill: s.color };
      series.push(entry);
    });
    const axes = [
      Object.assign({}, axis, spec.xAxis || {}),
      Object.assign({}, axis, { scale: "y", size: 56 }, spec.yAxis || {}),
    ];
    if (spec.series.some((s) => s.scale === "v")) {
      axes.push(Object.assign({}, axis, { scale: "v", side: 1, size: 44, grid: { show: false } }, spec.vAxis || {}));
    }
    const scales = { x: { time: spec.time !== false } };
    if (spec.xRange) scales.x.range = spec.xRange;
    if (spec.yRange) scales.y = { range: spec.yRange };
    if (spec.vRange) scales.v = { range: spec.vRange };
    return {
      width,
      height: spec.height || CHART_HEIGHT,
      series,
      axes,
      scales,
      legend: { show: spec.legend !== false },
      cursor: { drag: { x: spec.time !== false, y: false } },
    };
  }

  function countPoints(data) {
    let n = 0;
    for (let i = 1; i < data.length; i++) for (const v of data[i]) if (isNum(v)) n++;
    return n;
  }

  /* A time chart's columns with a null row (a break in every line) between two moments
     further apart than BREAK_STEPS typical steps and BREAK_MIN_S; every other missing
     value becomes undefined, which uPlot spans. Returns [data, breaks]. */
  function withBreaks(data) {
    const xs = data[0];
    const steps = [];
    for (let i = 1; i < xs.length; i++) steps.push(xs[i] - xs[i - 1]);
    steps.sort((a, b) => a - b);
    const limit = steps.length ? Math.max(BREAK_MIN_S, BREAK_STEPS * steps[steps.length >> 1]) : Infinity;
    const out = data.map(() => []);
    let breaks = 0;
    for (let i = 0; i < xs.length; i++) {
      if (i > 0 && xs[i] - xs[i - 1] > limit) {
        out[0].push((xs[i - 1] + xs[i]) / 2);
        for (let c = 1; c < data.length; c++) out[c].push(null);
        breaks++;
      }
      out[0].push(xs[i]);
      for (let c = 1; c < data.length; c++) {
        const v = data[c][i];
        out[c].push(v === null ? undefined : v);
      }
    }
    return [out, breaks];
  }

  /* Draw (or update) the chart `key` in `container`. A chart is rebuilt only when its
     series change (and on a theme change); new data otherwise goes to setData. */
  function chart(key, container, spec, data) {
    let breaks = 0;
    if (spec.time !== false && data[0].length === 1) {
      // One moment has no extent (uPlot would span years): show the minute around it.
      const t = data[0][0];
      data = [[t - 30, t, t + 30], ...data.slice(1).map((ys) => [undefined, ys[0], undefined])];
    } else if (spec.time !== false) {
      [data, breaks] = withBreaks(data);
    }
    const signature = JSON.stringify([spec.series.map((s) => [s.label, s.kind, s.scale, s.color]), spec.time, spec.height, spec.signature]);
    let entry = view.charts.get(key);
    if (entry && (entry.signature !== signature || entry.container !== container)) {
      destroyChart(key);
      entry = undefined;
    }
    if (!entry) {
      const width = Math.floor(container.clientWidth || (container.parentElement && container.parentElement.clientWidth) || 400);
      container.replaceChildren();
      const plot = new uPlot(options(spec, width), data, container);
      const caption = el("span", { class: "points" });
      container.append(caption);
      entry = { plot, container, signature, height: spec.height || CHART_HEIGHT, caption };
      view.charts.set(key, entry);
      resizer.observe(container);
    } else {
      entry.plot.setData(data);
    }
    const points = countPoints(data);
    container.setAttribute("data-points", String(points));
    container.setAttribute("data-breaks", String(breaks));
    entry.caption.textContent = points + (points === 1 ? " point" : " points");
  }

  function destroyChart(key) {
    const entry = view.charts.get(key);
    if (!entry) return;
    resizer.unobserve(entry.container);
    entry.plot.destroy();
    view.charts.delete(key);
  }

  function destroyChartsUnder(node) {
    for (const [key, entry] of view.charts) if (node.contains(entry.container)) destroyChart(key);
  }

  // ---------------------------------------------------------------- sections

  function renderHeader(s) {
    byId("namespace").textContent = "namespace: " + (s.config.topic_prefix || "(none)");
    const status = s.status;
    const parts = [];
    const assigned = Object.keys(status.assigned).length;
    parts.push(el("span", { text: "following " + assigned + " of " + s.config.followed.length + " topics" }));
    if (status.missing.length) parts.push(el("span", { class: "problem", text: " · missing: " + status.missing.join(", ") }));
    if (status.error) parts.push(el("span", { class: "problem", text: " · " + status.error }));
    if (status.offsets_error) parts.push(el("span", { class: "problem", text: " · " + status.offsets_error }));
    byId("feed-status").replaceChildren(...parts);
  }

  function figures(node, names, colors, columns, totals) {
    node.replaceChildren(...names.map((name, i) => el("div", { class: "figure" },
      el("span", { class: "label" }, swatch(colors[i]), name),
      el("span", { class: "value", text: fmtRate(lastValue(columns[name])) }),
      el("span", { class: "total", text: isNum(totals[name]) ? fmtInt(totals[name]) + " total" : "" }))));
  }

  function swatch(color) {
    const node = el("span", { class: "swatch" });
    node.style.background = color; // CSSOM, not an inline style attribute: allowed by the CSP
    return node;
  }

  function renderRates(sectionKey, chartId, figuresId) {
    const rates = view.state[sectionKey];
    const colors = palette().series;
    const names = rates.names;
    figures(byId(figuresId), names, colors, rates.columns, rates.totals);
    const spec = {
      series: names.map((name, i) => ({ label: name, color: colors[i % colors.length], digits: 2 })),
      yRange: (u, min, max) => [0, Math.max(1, max || 0) * 1.1],
    };
    chart(sectionKey, byId(chartId), spec, [rates.columns.t, ...names.map((n) => rates.columns[n])]);
  }

  function renderCounters() {
    const scraping = view.state.config.scrape.length > 0;
    byId("counters").hidden = !scraping;
    if (scraping) renderRates("counters", "counters-chart", "counters-figures");
  }

  const QUALITY = (name) => /(^|_)(auc|accuracy)$/.test(name);
  const NOT_ERRORS = new Set(["version", "mean_label", "mean_score"]);

  // The newest version, and the one workers serve when a promotion gate held it back.
  function versionText(m) {
    if (m.version === null) return "–";
    const serving = m.promoted_version;
    return "v" + m.version + (isNum(serving) && serving !== m.version ? " (held back; v" + serving + " serves)" : "");
  }

  function renderModels() {
    const models = view.state.models;
    byId("models-empty").hidden = models.length > 0;
    table(byId("models-table"),
      ["model", "version", "published", "trained examples", "AUC", "served AUC", "served AUC, last examples", "ECE, last examples", "log loss", "mean residual", "versions read"],
      models.map((m) => [
        m.name, versionText(m), ago(m.created_ts), fmtInt(m.trained_examples),
        fmt(m.latest.auc), fmt(m.latest.served_auc), fmt(m.latest.recent_served_auc), fmt(m.latest.recent_ece, 4), fmt(m.latest.log_loss), fmt(m.latest.mean_residual), fmtInt(m.versions_seen),
      ]));
    const list = byId("model-list");
    const keep = new Set(models.map((m) => m.name));
    for (const card of Array.from(list.children)) {
      if (!keep.has(card.dataset.model)) { destroyChartsUnder(card); card.remove(); }
    }
    for (const m of models) list.append(modelCard(list, m));
  }

  function modelCard(list, m) {
    let card = Array.from(list.children).find((c) => c.dataset.model === m.name);
    if (!card) {
      card = el("article", { class: "model", "data-model": m.name },
        el("h3"),
        el("div", { class: "model-charts" },
          el("div", null, el("p", { class: "chart-title", text: "quality and version" }), el("div", { class: "chart quality", "data-points": 0 })),
          el("div", null, el("p", { class: "chart-title", text: "losses and residuals" }), el("div", { class: "chart errors", "data-points": 0 })),
          el("div", null, el("p", { class: "chart-title", text: "reliability: mean label vs mean score per label-join window" }), el("div", { class: "chart reliability", "data-points": 0 }))));
    }
    card.querySelector("h3").replaceChildren(m.name, el("span", { class: "meta", text:
      (m.version === null ? "no snapshot yet" : versionText(m) + ", published " + ago(m.created_ts)) +
      (isNum(m.trained_examples) ? " · " + fmtInt(m.trained_examples) + " examples learned" : "") }));
    const colors = palette().series;
    const columns = m.columns;
    const names = Object.keys(columns).filter((n) => n !== "t");
    const quality = names.filter(QUALITY);
    const errors = names.filter((n) => !QUALITY(n) && !NOT_ERRORS.has(n));
    const qualitySeries = quality.map((n, i) => ({ label: n + " (" + (m.sources[n] || "?") + ")", color: colors[i % 9] }));
    qualitySeries.push({ label: "version", color: palette().muted, scale: "v", kind: "step", digits: 0, width: 1 });
    chart("model-quality:" + m.name, card.querySelector(".chart.quality"),
      { series: qualitySeries, height: 200, vRange: (u, min, max) => (isNum(min) ? [min - 1, max + 1] : [0, 1]), yRange: (u, min, max) => [Math.min(0.5, isNum(min) ? min : 0.5), 1], vAxis: { values: (u, splits) => splits.map((v) => Number.isInteger(v) ? "v" + v : "") } },
      [columns.t, ...quality.map((n) => columns[n]), columns.version]);
    chart("model-errors:" + m.name, card.querySelector(".chart.errors"),
      { series: errors.map((n, i) => ({ label: n, color: colors[(i + 3) % 9] })), height: 200 },
      [columns.t, ...errors.map((n) => columns[n])]);
    reliability("model-reliability:" + m.name, card.querySelector(".chart.reliability"),
      m.reliability.curves.map((c) => ({
        label: (c.arm ? "arm " + c.arm : "monitor") + (isNum(c.ece) ? ", ECE " + fmt(c.ece, 3) : ""),
        score: c.score, label_rate: c.label,
      })),
      m.reliability.windows);
    return card;
  }

  /* A reliability diagram: label rate against mean score, the diagonal for reference.
     `curves` are score bins (the monitor's calibration reports), `windows` one point per
     label-join window (mean score, mean label). */
  function reliability(key, container, curves, windows) {
    const p = palette();
    const xs = Array.from(new Set([0, 1, ...windows.score, ...curves.flatMap((c) => c.score)])).sort((a, b) => a - b);
    const at = (scores, labels) => {
      const map = new Map(scores.map((x, i) => [x, labels[i]]));
      return xs.map((x) => (map.has(x) ? map.get(x) : null));
    };
    const series = [{ label: "perfectly calibrated", color: p.muted, dash: [4, 4], width: 1 }];
    const data = [xs, xs.slice()];
    curves.forEach((c, i) => {
      series.push({ label: c.label, color: p.series[(i + 4) % 9], kind: "linepoints" });
      data.push(at(c.score, c.label_rate));
    });
    if (windows.score.length) {
      series.push({ label: "label-join windows", color: p.series[2], kind: "points" });
      data.push(at(windows.score, windows.label));
    }
    chart(key, container, {
      time: false, height: 200, xLabel: "mean score", xValue: (u, v) => fmt(v, 3),
      xRange: [0, 1], yRange: [0, 1], series,
    }, data);
  }

  function renderArms() {
    const arms = view.state.arms;
    byId("arms-empty").hidden = arms.length > 0;
    table(byId("arms-table"),
      ["model", "arm", "version", "examples", "label rate", "mean score", "AUC", "served AUC"],
      arms.map((a) => [a.model, a.arm, a.version === null ? "–" : "v" + a.version, fmtInt(a.examples),
        fmtPct(a.label_rate), fmt(a.mean_score), fmt(a.metrics.auc), fmt(a.metrics.served_auc)]));
  }

  function shares(counts) {
    const total = counts.reduce((a, b) => a + b, 0);
    return counts.map((c) => (total > 0 ? c / total : 0));
  }

  function histogram(key, container, bins, values, color, top) {
    const xs = bins.map((_, i) => i);
    const every = Math.max(1, Math.ceil(bins.length / 5));
    const long = bins.some((b) => b.length > 4);
    const label = (i) => {
      const text = bins[Math.round(i)];
      return text === undefined ? "" : text.length > 10 ? text.slice(0, 9) + "…" : text;
    };
    chart(key, container, {
      time: false, height: 150, legend: false, signature: bins.join("\u0000"),
      xRange: [-0.6, bins.length - 0.4], yRange: [0, top],
      xAxis: { splits: () => xs.filter((i) => i % every === 0), values: (u, splits) => splits.map(label), size: long ? 52 : 30, rotate: long ? -35 : 0 },
      yAxis: { size: 44, values: (u, splits) => splits.map((v) => fmt(100 * v, 0) + "%") },
      xValue: (u, v) => label(v),
      series: [{ label: "share", color, kind: "bars" }],
    }, [xs, values]);
  }

  function renderDrift() {
    const drift = view.state.drift;
    byId("drift-summary").textContent = drift.total === 0 ? "No drift report yet." :
      drift.drifted + " of " + drift.total + " monitored quantities drifted in their newest window.";
    const list = byId("drift-list");
    const shown = drift.reports.slice(0, MAX_DRIFT_CARDS);
    const keep = new Set(shown.map((r) => r.key));
    for (const card of Array.from(list.querySelectorAll(".drift-card"))) {
      if (!keep.has(card.dataset.key)) { destroyChartsUnder(card); card.remove(); }
    }
    const existing = new Map(Array.from(list.querySelectorAll(".drift-card")).map((c) => [c.dataset.key, c]));
    const p = palette();
    for (const r of shown) {
      let card = existing.get(r.key);
      const calibration = r.kind === "calibration";
      if (!card) {
        const plots = calibration
          ? el("div", { class: "chart calibration", "data-points": 0 })
          : el("div", { class: "histograms" },
            el("div", null, el("p", { class: "chart-title", text: "reference" }), el("div", { class: "chart hist-reference", "data-points": 0 })),
            el("div", null, el("p", { class: "chart-title", text: "this window" }), el("div", { class: "chart hist-current", "data-points": 0 })));
        card = el("article", { class: "drift-card", "data-key": r.key },
          el("h3"), plots, el("table", { class: "table stats" }), el("p", { class: "where" }));
      }
      list.append(card); // (re)ordered as the server sorts: drifted first
      card.classList.toggle("drifted", r.drifted);
      card.setAttribute("data-drifted", String(r.drifted));
      const context = [r.scope, r.model && (r.model + (isNum(r.model_version) ? " v" + r.model_version : "")), r.arm && "arm " + r.arm, r.producer, r.kind]
        .filter(Boolean).join(" · ");
      card.querySelector("h3").replaceChildren(r.feature || r.key, el("span", { class: "flag", text: "drifted" }), el("span", { class: "meta", text: context }));
      if (calibration) {
        reliability("drift-cal:" + r.key, card.querySelector(".chart.calibration"),
          [{ label: "label rate per score bin", score: r.reference, label_rate: r.current }], { score: [], label: [] });
      } else {
        const ref = shares(r.reference), cur = shares(r.current);
        const top = Math.max(0.01, ...ref, ...cur) * 1.1;
        histogram("drift-ref:" + r.key, card.querySelector(".hist-reference"), r.bins, ref, p.reference, top);
        histogram("drift-cur:" + r.key, card.querySelector(".hist-current"), r.bins, cur, r.drifted ? p.bad : p.accent, top);
      }
      const names = Array.from(new Set([...Object.keys(r.statistics), ...Object.keys(r.thresholds)])).sort();
      table(card.querySelector("table.stats"), ["statistic", "value", "threshold"], names.map((n) => [
        n,
        el("td", { class: r.crossed.includes(n) ? "crossed" : null, text: fmt(r.statistics[n], 4) }),
        fmt(r.thresholds[n], 4),
      ]));
      card.querySelector(".where").textContent = [
        r.topic + " p" + r.partition + " offsets " + r.first_offset + "–" + r.last_offset,
        fmtInt(r.record_count) + " records",
        "window to " + clock(r.window_end_ts),
        "newest window drifted in " + r.drifted_partitions + " of " + r.partitions + (r.partitions === 1 ? " partition" : " partitions"),
        r.drifted_windows + " of " + r.windows + " windows read drifted",
      ].join(" · ");
    }
    const more = list.querySelector(".more");
    if (more) more.remove();
    if (drift.reports.length > shown.length) {
      const hidden = drift.reports.slice(shown.length);
      const drifted = hidden.filter((r) => r.drifted).length;
      list.append(el("p", { class: "more", text: hidden.length + " more quantities not shown (" + drifted + " of them drifted)" }));
    }
  }

  function alertIdentity(a) {
    return a.key + "\u0000" + a.raised_ts + "\u0000" + a.offset;
  }

  function renderAlerts() {
    const alerts = view.state.alerts;
    const by = alerts.by_severity;
    byId("alerts-summary").textContent = alerts.total === 0 ? "No alert." :
      fmtInt(alerts.total) + " alerts read: " + by.critical + " critical, " + by.warning + " warning, " + by.info + " info.";
    const p = palette();
    const tl = alerts.timeline;
    chart("alerts", byId("alerts-chart"), {
      height: 120,
      xRange: (u, min, max) => (isNum(min) ? [min - alerts.bucket_s / 2, max + alerts.bucket_s / 2] : [min, max]),
      yRange: (u, min, max) => [0, Math.max(1, max || 0) * 1.2],
      series: [
        { label: "critical", color: p.bad, kind: "bars", digits: 0, barShare: 0.3, barMax: 6 },
        { label: "warning", color: p.warn, kind: "bars", digits: 0, barShare: 0.3, barMax: 6 },
        { label: "info", color: p.accent, kind: "bars", digits: 0, barShare: 0.3, barMax: 6 },
      ],
    }, [tl.t, ...["critical", "warning", "info"].map((k) => tl[k].map((v) => (v ? v : null)))]);
    const first = view.alertsSeen === null;
    const seen = view.alertsSeen || new Set();
    const items = alerts.items.map((a) => {
      const id = alertIdentity(a);
      const fresh = !first && !seen.has(id);
      seen.add(id);
      // One condition alerted by several partitions is one entry (dashboard/alerts.py).
      const grouped = a.count > 1;
      const details = [a.source && "from " + a.source, a.model && "model " + a.model + (isNum(a.model_version) ? " v" + a.model_version : ""),
        isNum(a.value) && "value " + fmt(a.value, 4) + (isNum(a.threshold) ? " vs threshold " + fmt(a.threshold, 4) : ""),
        ...Object.entries(a.labels).filter(([k]) => !(grouped && k === "partition")).map(([k, v]) => k + "=" + v)].filter(Boolean).join(" · ");
      const partitions = a.partitions && a.partitions.length ? " (partitions " + a.partitions.join(", ") + ")" : "";
      return el("li", { class: "alert sev-" + a.severity + (fresh ? " fresh" : ""), "data-key": a.key, "data-severity": a.severity },
        el("div", { class: "line1" },
          el("span", { class: "sev", text: a.severity }),
          el("span", { class: "kind", text: a.kind }),
          grouped ? el("span", { class: "count", title: a.count + " alerts of this key" + partitions, text: "×" + a.count + partitions }) : null,
          el("span", { class: "when", title: isNum(a.raised_ts) ? new Date(a.raised_ts * 1000).toISOString() : null, text: clock(a.raised_ts) + " · " + ago(a.raised_ts) })),
        el("div", { class: "message", text: a.message }),
        details ? el("div", { class: "details", text: details }) : null);
    });
    view.alertsSeen = seen;
    byId("alert-list").replaceChildren(...items);
  }

  function renderProcesses() {
    const processes = view.state.processes;
    const scraping = view.state.config.scrape.length > 0;
    byId("processes-empty").hidden = scraping;
    table(byId("processes-table"), scraping ? ["process", "state", "since", "CPU", "memory", "restarts", "input lag", "detail"] : [],
      processes.map((p) => [
        p.name,
        el("td", { class: p.up ? "up" : "down", text: p.up === null ? "…" : p.up ? "up" : "down" }),
        ago(p.since),
        isNum(p.cpu_share) ? fmt(100 * p.cpu_share, 0) + "%" : "–",
        isNum(p.rss_bytes) ? fmt(p.rss_bytes / 1048576, 0) + " MiB" : "–",
        fmtInt(p.restarts),
        inputLag(p),
        el("td", { class: "text", text: p.error || p.url }),
      ]));
  }

  // An agent's records waiting after its positions; partitions with records waiting at a
  // position that has not moved for a minute are named (a worker that stopped reading one
  // leaves every other figure normal). "–" for a process that is not an agent.
  function inputLag(p) {
    if (!isNum(p.input_lag)) return "–";
    const stalled = p.stalled_partitions || 0;
    const text = fmtInt(p.input_lag) + (stalled ? " (" + fmtInt(stalled) + " not moving)" : "");
    return el("td", { class: stalled ? "down" : null, title: stalled ? "partitions with records waiting at an unmoved position for 60 s or more" : null, text: text });
  }

  const RENDER = {
    models: renderModels,
    arms: renderArms,
    drift: renderDrift,
    alerts: renderAlerts,
    processes: renderProcesses,
    status: () => renderHeader(view.state),
  };

  function guarded(name, render) {
    try {
      render();
    } catch (err) {
      // One section failing must not stop the others (and the test sees the console).
      console.error("dashboard: rendering " + name + " failed", err);
    }
  }

  function renderAll() {
    guarded("header", () => renderHeader(view.state));
    guarded("pipeline", () => renderRates("rates", "pipeline-chart", "pipeline-figures"));
    guarded("counters", renderCounters);
    for (const name of SECTIONS) guarded(name, RENDER[name]);
  }

  // ---------------------------------------------------------------- the stream

  function mergeRows(target, delta, windowS) {
    const columns = target.columns;
    const added = delta.columns;
    const rows = columns.t.length;
    for (const [name, values] of Object.entries(added)) {
      if (!columns[name]) columns[name] = new Array(rows).fill(null);
      columns[name].push(...values);
    }
    target.totals = delta.totals;
    const times = columns.t;
    const newest = times[times.length - 1];
    let cut = 0;
    while (cut < times.length && times[cut] < newest - windowS) cut++;
    if (cut > 0) for (const name of Object.keys(columns)) columns[name].splice(0, cut);
  }

  function applyState(payload) {
    view.state = payload;
    view.skew = Date.now() / 1000 - payload.server_time;
    renderAll();
  }

  function applyDelta(payload) {
    const s = view.state;
    if (!s) return;
    view.skew = Date.now() / 1000 - payload.server_time;
    if (payload.rates) {
      mergeRows(s.rates, payload.rates, s.config.window_s);
      guarded("pipeline", () => renderRates("rates", "pipeline-chart", "pipeline-figures"));
    }
    if (payload.counters) {
      mergeRows(s.counters, payload.counters, s.config.window_s);
      guarded("counters", renderCounters);
    }
    for (const name of SECTIONS) {
      if (name in payload) {
        s[name] = payload[name];
        guarded(name, RENDER[name]);
      }
    }
  }

  function setConnection(state, text) {
    const badge = byId("connection");
    if (badge.dataset.state !== state) badge.dataset.state = state;
    badge.textContent = text;
  }

  function received() {
    view.lastMessage = Date.now();
    setConnection("live", "live");
  }

  function connect() {
    // Relative to the page: behind an ingress that gives the dashboard a path
    // (https://ops.example.com/dashboard/), "/api/events" went to the host's root.
    const source = new EventSource("api/events");
    source.addEventListener("state", (event) => { received(); applyState(JSON.parse(event.data)); });
    source.addEventListener("delta", (event) => { received(); applyDelta(JSON.parse(event.data)); });
    source.addEventListener("heartbeat", (event) => {
      received();
      view.skew = Date.now() / 1000 - JSON.parse(event.data).server_time;
    });
    source.addEventListener("error", () => {
      setConnection("disconnected", "reconnecting");
      // EventSource retries by itself only after a dropped connection: an answer that is
      // not 200 (the dashboard's 503 at its most streams, a proxy's 502 while it restarts)
      // closes it for good, and the page said "reconnecting" until reloaded.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, RETRY_CLOSED_MS);
      }
    });
  }

  function everySecond() {
    if (view.lastMessage) {
      const silent = Date.now() - view.lastMessage;
      if (silent > STALE_AFTER_MS && byId("connection").dataset.state === "live") setConnection("stale", "stale");
      byId("updated").textContent = "updated " + Math.round(silent / 1000) + " s ago";
    }
  }

  function everyFewSeconds() {
    // Relative times ("published 20 s ago") move on even when nothing else changes.
    if (!view.state) return;
    guarded("models", renderModels);
    guarded("processes", renderProcesses);
  }

  function rebuildCharts() {
    for (const key of Array.from(view.charts.keys())) destroyChart(key);
    if (view.state) renderAll();
  }

  function start() {
    if (typeof uPlot === "undefined") {
      console.error("dashboard: uPlot did not load");
      return;
    }
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", rebuildCharts);
    setInterval(everySecond, 1000);
    setInterval(everyFewSeconds, 5000);
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
