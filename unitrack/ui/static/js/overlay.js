// Curves of several runs overlaid: x = step / relative time / wall time, EMA smoothing with
// debias, log scale, and min/max bands from the server's buckets (zoom re-asks for the range).
import { get } from "./api.js";
import { esc, query } from "./util.js";
import { CurveChart } from "./chart.js";

export async function overlayPage(view) {
  const params = query();
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  if (!ids.length) { view.innerHTML = `<p>Select runs on the <a href="#/">runs page</a> first.</p>`; return null; }
  document.getElementById("crumbs").textContent = `/ overlay of ${ids.length} run(s)`;
  const runs = await Promise.all(ids.map((id) => get(`/api/runs/${encodeURIComponent(id)}`)));
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metric_summary || {})))].sort();
  const preferred = params.get("key") || keys.find((k) => /val.*loss|loss/i.test(k)) || keys[0];
  view.innerHTML = `
    <h1>Overlay</h1>
    <p class="dim">${runs.map((r) => `<a href="#/run/${esc(r.run_id)}">${esc(r.name || r.run_id)}</a>`).join(", ")}</p>
    <div class="toolbar controls">
      <label>metric <select id="key">${keys.map((k) => `<option ${k === preferred ? "selected" : ""}>${esc(k)}</option>`).join("")}</select></label>
      <label>x <select id="x"><option value="step">step</option><option value="relative">relative time</option><option value="wall">wall time</option></select></label>
      <label>smoothing <input type="range" id="smooth" min="0" max="0.99" step="0.01" value="0"> <span id="smooth-v">0</span></label>
      <label><input type="checkbox" id="log"> log scale</label>
    </div>
    <div class="panel" id="chart"></div>`;
  const options = { xMode: "step", smoothing: 0, logY: false, height: 420 };
  if (params.get("buckets")) options.buckets = Number(params.get("buckets"));
  let chart = null;
  const build = async (key) => {
    if (chart) chart.destroy();
    const box = view.querySelector("#chart");
    box.innerHTML = "";
    const curves = runs.filter((r) => key in (r.metric_summary || {})).map((r) => ({ run: r.run_id, key, label: `${r.name || r.run_id} (${r.run_id.slice(0, 6)})`, t0: r.start_time }));
    chart = new CurveChart(box, curves, {
      ...options, title: key,
      onDrawn: (sinceData) => {
        document.body.dataset.overlayDrawMs = sinceData.toFixed(1);
        document.body.dataset.overlayPoints = String(chart.curves.reduce((n, c) => n + (c.data ? c.data.step.length : 0), 0));
      },
    });
    await chart.load();
  };
  await build(preferred);
  view.querySelector("#key").addEventListener("change", (e) => build(e.target.value));
  view.querySelector("#x").addEventListener("change", (e) => { options.xMode = e.target.value; chart.setOptions({ xMode: options.xMode }); });
  view.querySelector("#smooth").addEventListener("input", (e) => {
    view.querySelector("#smooth-v").textContent = e.target.value;
    options.smoothing = Number(e.target.value);
    chart.setOptions({ smoothing: options.smoothing });
  });
  view.querySelector("#log").addEventListener("change", (e) => { options.logY = e.target.checked; chart.setOptions({ logY: options.logY }); });
  return () => chart && chart.destroy();
}
