// Curves at full fidelity: each series is fetched as at most N buckets (a point plus the bucket's
// min and max, drawn as a band, so no spike is lost); a zoom (drag) asks the server again for the
// visible range, down to the raw points; a double click goes back to the whole series.
import { get } from "./api.js";
import { PALETTE, esc } from "./util.js";

/* global uPlot */

// EMA with the usual debias (TensorBoard's): s = w*s + (1-w)*x, shown as s / (1 - w^n).
export function ema(values, weight) {
  if (!weight) return values;
  let last = 0, n = 0;
  return values.map((v) => {
    if (v === null || !isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
}

function monotonic(steps) {
  for (let i = 1; i < steps.length; i++) if (steps[i] < steps[i - 1]) return false;
  return true;
}

function alpha(color, a) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

// One chart of one or more (run, key) curves. options: {title, xMode: step|relative|wall,
// smoothing: 0..0.999, logY, height, onDrawn(ms)}.
export class CurveChart {
  constructor(target, curves, options = {}) {
    this.target = target;
    this.curves = curves.map((c, i) => ({ color: PALETTE[i % PALETTE.length], ...c, data: null }));
    this.options = { xMode: "step", smoothing: 0, logY: false, height: 220, ...options };
    this.range = null; // null: the whole series; else [min, max] in the chart's x units
    this.plot = null;
    this.box = document.createElement("div");
    this.legend = document.createElement("div");
    this.legend.className = "chart-legend";
    this.info = document.createElement("div");
    this.info.className = "dim chart-legend";
    target.append(this.box, this.legend, this.info);
  }

  buckets() {
    return Math.max(200, Math.min(4000, Math.round(this.target.clientWidth || 600)));
  }

  // the x axis the API is asked about, and the range in its units
  queryFor(curve) {
    const params = { key: curve.key, buckets: this.options.buckets || this.buckets() };
    const mode = this.options.xMode;
    const useIndex = mode === "step" && curve.data && curve.data.indexAxis;
    params.x = mode === "step" ? (useIndex ? "index" : "step") : "time";
    if (this.range) {
      let [lo, hi] = this.range;
      if (mode === "relative") { lo += curve.t0; hi += curve.t0; }
      params.start = lo; params.end = hi;
    }
    return params;
  }

  async load() {
    const fetched = await Promise.all(this.curves.map((c) => get(`/api/runs/${encodeURIComponent(c.run)}/metric`, this.queryFor(c))
      .catch((e) => ({ error: e.message }))));
    fetched.forEach((data, i) => {
      const curve = this.curves[i];
      if (data.error) { curve.data = null; curve.error = data.error; return; }
      data.indexAxis = (curve.data && curve.data.indexAxis) || !monotonic(data.step);
      if (curve.t0 === undefined || curve.t0 === null) curve.t0 = data.time && data.time.length ? data.time[0] : 0;
      curve.data = data;
    });
    this.dataAt = performance.now();
    this.draw();
  }

  xs(curve) {
    const d = curve.data;
    if (this.options.xMode === "wall") return d.time;
    if (this.options.xMode === "relative") return d.time.map((t) => t - curve.t0);
    return d.indexAxis ? d.index : d.step;
  }

  draw() {
    const started = performance.now();
    const usable = this.curves.filter((c) => c.data && c.data.step.length);
    const positive = (v) => (this.options.logY && !(v > 0) ? null : v);
    const tables = usable.map((c) => {
      const value = ema(c.data.value, this.options.smoothing).map(positive);
      return [this.xs(c), value, c.data.max.map(positive), c.data.min.map(positive)];
    });
    const series = [{}];
    const bands = [];
    usable.forEach((c) => {
      const base = series.length;
      series.push({ label: c.label, stroke: c.color, width: 1.5, spanGaps: true, points: { show: false } });
      series.push({ label: c.label + " max", stroke: alpha(c.color, 0.35), width: 0.5, spanGaps: true, points: { show: false } });
      series.push({ label: c.label + " min", stroke: alpha(c.color, 0.35), width: 0.5, spanGaps: true, points: { show: false } });
      bands.push({ series: [base + 1, base + 2], fill: alpha(c.color, 0.15) });
    });
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.legend.innerHTML = this.curves.map((c) => `<span style="color:${c.color}">&#9632;</span> ${esc(c.label)}`
      + (c.error ? ` <span class="error">${esc(c.error)}</span>` : "")).join(" &nbsp; ");
    if (!tables.length) { this.box.innerHTML = `<p class="dim">no points</p>`; return; }
    this.box.innerHTML = "";
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const mode = this.options.xMode;
    const indexAxis = mode === "step" && usable.some((c) => c.data.indexAxis);
    const chart = this;
    let firstDraw = true;
    const opts = {
      title: this.options.title,
      width: Math.max(240, this.target.clientWidth || 600),
      height: this.options.height,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: mode === "wall" }, y: this.options.logY ? { distr: 3 } : {} },
      axes: [{ label: mode === "step" ? (indexAxis ? "point # (steps go back)" : "step") : mode === "relative" ? "seconds" : "" }, {}],
      series,
      bands,
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          chart.zoom([lo, hi]);
        }],
        draw: [() => {
          if (!firstDraw) return;
          firstDraw = false;
          if (chart.options.onDrawn) chart.options.onDrawn(performance.now() - (chart.dataAt || started));
        }],
      },
    };
    this.plot = new uPlot(opts, data, this.box);
    this.target.dataset.xMode = mode;
    this.target.dataset.xFirst = String(data[0][0]);
    this.plot.over.addEventListener("dblclick", () => this.zoom(null));
    const total = usable.reduce((n, c) => n + c.data.total, 0);
    const raw = usable.every((c) => c.data.raw);
    this.info.textContent = `${total.toLocaleString()} point(s) in view` + (raw ? " (raw)" : ", bucketed: line = mean, band = min..max")
      + (this.range ? " · zoomed (double-click: whole series)" : " · drag to zoom");
  }

  async zoom(range) {
    this.range = range;
    await this.load();
  }

  async setOptions(options) {
    const refetch = options.xMode !== undefined && options.xMode !== this.options.xMode;
    Object.assign(this.options, options);
    if (refetch) { this.range = null; await this.load(); } else this.draw();
  }

  destroy() { if (this.plot) this.plot.destroy(); }
}

// A chart of raw (time, value) series (the system monitor), no bucketing needed.
export function timeChart(target, title, entries, height = 160) {
  const usable = entries.filter((e) => e.time.length);
  if (!usable.length) return null;
  const tables = usable.map((e) => [e.time, e.value]);
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  const series = [{}, ...usable.map((e, i) => ({ label: e.label, stroke: PALETTE[i % PALETTE.length], width: 1.2, spanGaps: true, points: { show: false } }))];
  return new uPlot({
    title, width: Math.max(240, target.clientWidth || 400), height, series,
    scales: { x: { time: true } }, legend: { show: usable.length > 1 },
  }, data, target);
}
