// Sweep importance: which params of an experiment's runs (or an Optuna study's trials) explain the
// metric's variation, as `unitrack explain --sweep EXPERIMENT --json` ranks them.
import { get } from "./api.js";
import { esc, fmt } from "./util.js";

function bar(share) {
  const width = Math.round(200 * Math.max(0, Math.min(1, share)));
  return `<span class="bar" style="display:inline-block;height:10px;width:${width}px;background:#3b6fd1"></span>`;
}

function levelsTable(param) {
  return `<h3 class="mono">${esc(param.key)} <span class="dim">(${esc(param.scale)})</span></h3>
    <table class="data"><tr><th>${esc(param.key)}</th><th>runs</th><th>mean</th><th>min</th><th>max</th></tr>
    ${param.levels.map((l) => `<tr><td class="mono">${esc(l.label)}</td><td class="num">${l.runs}</td><td class="num">${esc(fmt(l.mean))}</td>
      <td class="num">${esc(fmt(l.low))}</td><td class="num">${esc(fmt(l.high))}</td></tr>`).join("")}</table>`;
}

export async function sweepPage(view, experiment, metric) {
  document.getElementById("crumbs").innerHTML = `/ sweep ${esc(experiment)}`;
  view.innerHTML = `<h1>Which params mattered in ${esc(experiment)}</h1><p class="dim">ranking the runs…</p>`;
  const query = `experiment=${encodeURIComponent(experiment)}` + (metric ? `&metric=${encodeURIComponent(metric)}` : "");
  const data = await get(`/api/sweep?${query}`);
  const top = data.params.slice(0, 3);
  view.innerHTML = `<h1>Which params mattered in ${esc(experiment)}</h1>
    <p class="dim">${data.runs} run(s), each's ${esc(data.value)} of <span class="mono">${esc(data.metric)}</span> · method: ${esc(data.method)}</p>
    <table class="data" id="importance"><tr><th>param</th><th>share of the variance</th><th></th></tr>
    ${data.params.map((p) => `<tr><td class="mono">${esc(p.key)}</td><td class="num">${(100 * p.importance).toFixed(1)}%</td><td>${bar(p.importance)}</td></tr>`).join("")}
    <tr><td class="dim">unexplained (noise, interactions)</td><td class="num">${(100 * data.residual).toFixed(1)}%</td><td>${bar(data.residual)}</td></tr></table>
    <h2>The metric against the top params</h2>${top.map(levelsTable).join("")}
    ${data.bookkeeping.length ? `<p class="dim">not ranked (bookkeeping): ${data.bookkeeping.map((b) => esc(b.key)).join(", ")}</p>` : ""}
    ${data.constant.length ? `<p class="dim">the same in every run: ${data.constant.map(esc).join(", ")}</p>` : ""}
    ${data.skipped.length ? `<p class="dim">left out: ${data.skipped.length} run(s) (${esc(data.skipped[0].why || "")}${data.skipped.length > 1 ? ", …" : ""})</p>` : ""}`;
  document.body.dataset.sweepReady = "1";
  return null;
}
