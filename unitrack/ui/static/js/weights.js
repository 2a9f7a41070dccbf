// Weights: per-layer change heatmaps over the run's snapshots and checkpoints, the per-neuron
// heatmap of its largest layer, and the per-layer table of `unitrack delta RUN`.
import { get } from "./api.js";
import { esc, fmt } from "./util.js";

// white → blue → dark red, on a log scale of the values present
function colour(t) {
  const stops = [[255, 255, 255], [120, 170, 235], [40, 80, 190], [150, 20, 40]];
  const x = Math.min(0.999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(x), f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

function heatmap(title, rows, labels, columns, note) {
  const values = rows.flat().filter((v) => v !== null && v > 0);
  const wrap = document.createElement("div");
  wrap.className = "panel";
  if (!values.length) { wrap.innerHTML = `<h3>${esc(title)}</h3><p class="dim">no change recorded</p>`; return wrap; }
  const lo = Math.log10(Math.min(...values)), hi = Math.log10(Math.max(...values));
  const cellW = Math.max(6, Math.min(40, Math.floor(800 / Math.max(1, columns.length))));
  const cellH = Math.max(4, Math.min(18, Math.floor(600 / Math.max(1, rows.length))));
  const canvas = document.createElement("canvas");
  canvas.className = "heat";
  canvas.width = columns.length * cellW;
  canvas.height = rows.length * cellH;
  const ctx = canvas.getContext("2d");
  rows.forEach((row, r) => row.forEach((v, c) => {
    const t = v === null || !(v > 0) ? 0 : hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1;
    const [R, G, B] = v === null ? [235, 235, 235] : colour(0.1 + 0.9 * t);
    ctx.fillStyle = `rgb(${R},${G},${B})`;
    ctx.fillRect(c * cellW, r * cellH, cellW, cellH);
  }));
  canvas.title = "hover for values";
  canvas.addEventListener("mousemove", (e) => {
    const c = Math.floor(e.offsetX / cellW), r = Math.floor(e.offsetY / cellH);
    if (rows[r] && c < columns.length) canvas.title = `${labels[r]} · ${columns[c]}: ${fmt(rows[r][c])}`;
  });
  const labelBox = labels.length <= 40 ? `<div class="mono" style="line-height:${cellH}px;font-size:${Math.min(11, cellH)}px">${labels.map(esc).join("<br>")}</div>` : "";
  wrap.innerHTML = `<h3>${esc(title)}</h3><p class="dim">${esc(note)} · colour: log scale, ${fmt(10 ** lo)} … ${fmt(10 ** hi)}</p>`;
  const body = document.createElement("div");
  body.style.display = "flex";
  body.style.gap = "8px";
  body.innerHTML = labelBox;
  body.prepend(canvas);
  wrap.append(body);
  return wrap;
}

function deltaTable(delta) {
  if (!delta) return `<p class="dim">one set of weights only: nothing to compare</p>`;
  const total = delta.total;
  const sparse = delta.tensors.some((t) => t.sparsity && (t.sparsity.a > 0 || t.sparsity.b > 0));  // pruned layers
  const sparsity = (t) => (sparse ? `<td class="num">${t.sparsity ? `${Math.round(100 * t.sparsity.a)}% → ${Math.round(100 * t.sparsity.b)}%` : "-"}</td>` : "");
  return `<p class="dim">${esc(delta.source_a)} → ${esc(delta.source_b)} · total L2 ${esc(fmt(total.l2))}, relative ${esc(fmt(total.relative))}, changed ${(100 * total.changed_fraction).toFixed(1)}% of ${total.numel.toLocaleString()} elements</p>
    <table class="data" id="delta-table"><tr><th>tensor</th><th>shape</th><th>relative</th><th>L2</th><th>mean|Δ|</th><th>max|Δ|</th><th>cosine</th><th>changed</th><th>from init</th><th>units moved</th>${sparse ? "<th>sparsity</th>" : ""}</tr>
    ${delta.tensors.map((t) => `<tr><td class="mono">${esc(t.name)}</td><td>${esc(t.shape.join("×") || "scalar")}</td><td class="num">${esc(fmt(t.relative))}</td>
      <td class="num">${esc(fmt(t.l2))}</td><td class="num">${esc(fmt(t.mean_abs))}</td><td class="num">${esc(fmt(t.max_abs))}</td><td class="num">${esc(fmt(t.cosine))}</td>
      <td class="num">${(100 * t.changed_fraction).toFixed(1)}%</td><td class="num">${esc(fmt(t.from_init_l2))}</td>
      <td class="num">${t.neurons ? `${t.neurons.units - t.neurons.unmoved}/${t.neurons.units}` : "-"}</td>${sparsity(t)}</tr>`).join("")}</table>`;
}

// Activation statistics (watch(model, activations_every=N)): the last value of each statistic per
// module, the layers explain calls dead or saturated, and heatmaps of dead units / saturation over
// the sampled steps (drawn by drawActivations once the section is in the page).
function activationsSection(activations) {
  if (!activations) return "";
  const stats = activations.stats;
  const warn = activations.unhealthy.length
    ? `<p class="error" id="unhealthy">${activations.unhealthy.map(esc).join("<br>")}</p>` : "";
  return `<h2>Activations</h2>
    <p class="dim">${activations.layers.length} module(s) sampled at ${activations.steps.length} step(s); last sample of each statistic</p>${warn}
    <table class="data" id="activations-table"><tr><th>module</th>${stats.map((s) => `<th>${esc(s)}</th>`).join("")}</tr>
    ${activations.layers.map((l) => `<tr><td class="mono">${esc(l.layer)}</td>${stats.map((s) => `<td class="num">${esc(fmt(l.last[s] ?? null))}</td>`).join("")}</tr>`).join("")}</table>
    <div class="grid" id="activation-maps"></div>`;
}

function drawActivations(view, activations) {
  const maps = view.querySelector("#activation-maps");
  if (!activations || !maps) return;
  const columns = activations.steps.map((s) => `step ${s}`);
  for (const [stat, title] of [["zero_fraction", "dead units (zero fraction)"], ["saturation_fraction", "saturation (fraction near the bounds)"]]) {
    const layers = activations.layers.filter((l) => l.series[stat]);
    if (layers.length) maps.append(heatmap(title, layers.map((l) => l.series[stat]), layers.map((l) => l.layer), columns, "rows: modules, columns: sampled steps"));
  }
}

export async function weightsPage(view, ref) {
  document.getElementById("crumbs").innerHTML = `/ <a href="#/run/${esc(ref)}">run ${esc(ref)}</a> / weights`;
  view.innerHTML = `<h1>Weights</h1><p class="dim">reading the run's snapshots and checkpoints…</p>`;
  const data = await get(`/api/runs/${encodeURIComponent(ref)}/weights`);
  if (!data.steps.length) {
    view.innerHTML = `<h1>Weights</h1><p class="dim">run ${esc(ref)} has no weight snapshots or checkpoints (tracker.watch(model, snapshot_every=N) or save_checkpoint records them).</p>
      <div id="activations">${activationsSection(data.activations)}</div>`;
    drawActivations(view, data.activations);
    document.body.dataset.weightsReady = "1";
    return null;
  }
  const columns = data.steps.map((s, i) => `step ${s} (${data.points[i]})`);
  view.innerHTML = `<h1>Weights of <a href="#/run/${esc(data.run_id)}">${esc(data.run_id)}</a></h1>
    <p class="dim">${data.layers.length} tensor(s) over ${data.steps.length} snapshot(s)/checkpoint(s), steps ${esc(data.steps.join(", "))}</p>
    <div class="grid" id="heatmaps"></div>
    <h2>Per-layer change, first → final weights (unitrack delta)</h2><div id="delta">${deltaTable(data.delta)}</div>
    <div id="activations">${activationsSection(data.activations)}</div>`;
  const maps = view.querySelector("#heatmaps");
  maps.append(heatmap("change since the previous point (relative)", data.layers.map((l) => data.step_change[l]), data.layers, columns, "rows: tensors, columns: snapshots"));
  maps.append(heatmap("distance from the first weights (L2)", data.layers.map((l) => data.from_init[l]), data.layers, columns, "rows: tensors, columns: snapshots"));
  if (data.neuron_change && data.neuron_change.length) {
    const units = data.neuron_change[0].length;
    const rows = Array.from({ length: units }, (_, u) => data.neuron_change.map((row) => row[u]));
    maps.append(heatmap(`${data.neuron_layer}: change per unit`, rows, rows.map((_, u) => `unit ${u}`), columns.slice(1), "rows: output units, columns: intervals"));
  }
  drawActivations(view, data.activations);
  document.body.dataset.weightsReady = "1";
  return null;
}
