// One run: its curves grouped by prefix, system charts, params, tags, environment, git, model,
// checkpoints with their verify state, artifacts, a failed run's exception, its note; live while
// it trains (server-sent events tailing the journal).
import { get, put, stream, download } from "./api.js";
import { esc, fmt, fmtTime, fmtDuration, badge, kvTable, el } from "./util.js";
import { CurveChart, timeChart } from "./chart.js";

function prefixGroups(keys) {
  const groups = new Map();
  for (const key of [...keys].sort()) {
    const cut = key.lastIndexOf("/");
    const prefix = cut > 0 ? key.slice(0, cut) : "";
    if (!groups.has(prefix)) groups.set(prefix, []);
    groups.get(prefix).push(key);
  }
  return groups;
}

// A failed run's exception as `show --json` has it: error {type, message, where, traceback}.
function exceptionOf(run) {
  const found = run.error;
  if (!found) return null;
  if (typeof found === "string") return found;
  const head = [found.type, found.message].filter(Boolean).join(": ");
  const trace = Array.isArray(found.traceback) ? found.traceback.join("") : found.traceback || "";
  return [head, found.where ? "at " + found.where : "", trace].filter(Boolean).join("\n\n") || JSON.stringify(found, null, 2);
}

export async function runPage(view, ref) {
  const run = await get(`/api/runs/${encodeURIComponent(ref)}`);
  const id = run.run_id;
  document.getElementById("crumbs").innerHTML = `/ run ${esc(run.name || id)}`;
  const info = run.info || {};
  const git = info.git || {};
  const keys = Object.keys(run.metric_summary || {});
  const exception = exceptionOf(run);
  view.innerHTML = `
    <h1>${esc(run.name || id)} ${badge(run.status)} <span id="live"></span></h1>
    <p class="dim mono">run ${esc(id)} · experiment ${esc(run.experiment)} · started ${esc(fmtTime(run.start_time))} · took ${esc(fmtDuration(run.duration))}
      · <a href="#/weights/${esc(id)}">weights</a> · <a href="#/sweep/${encodeURIComponent(run.experiment)}">which params mattered in ${esc(run.experiment)}</a></p>
    ${run.message ? `<p>${esc(run.message)}</p>` : ""}
    ${exception ? `<h2>Exception</h2><pre class="exception" id="exception">${esc(exception)}</pre>` : ""}
    <h2>Note</h2>
    <div><textarea class="note" id="note" placeholder="what this run was for, what you saw">${esc(info.note || "")}</textarea>
      <button class="primary" id="save-note">save note</button> <span id="note-state" class="dim"></span></div>
    <h2>Curves</h2>
    <div class="toolbar controls">
      <label>x <select id="x"><option value="step">step</option><option value="relative">relative time</option><option value="wall">wall time</option></select></label>
      <label>smoothing <input type="range" id="smooth" min="0" max="0.99" step="0.01" value="0"> <span id="smooth-v">0</span></label>
      <label><input type="checkbox" id="log"> log scale</label>
    </div>
    <div id="curves">${keys.length ? "" : `<p class="dim">no metrics yet</p>`}</div>
    <h2>System</h2><div id="system" class="grid"></div>
    <div class="cols2">
      <div><h2>Params</h2>${kvTable(Object.entries(run.params || {}).sort())}</div>
      <div><h2>Tags</h2>${kvTable(Object.entries(run.tags || {}))}
        <h2>Git</h2>${kvTable([["commit", git.commit], ["branch", git.branch], ["dirty", git.dirty], ["remote", git.remote]])}
        <h2>Run</h2>${kvTable([["command", (info.command || []).join(" ")], ["host", info.host], ["pid", info.pid], ["config hash", info.config_hash], ["folder", run.path]])}</div>
    </div>
    <h2>Environment</h2><div id="environment"></div>
    <h2>Model</h2><div id="model" class="dim">…</div>
    <h2>Checkpoints</h2><div id="checkpoints" class="dim">…</div>
    <h2>Artifacts</h2><div id="artifacts"></div>`;

  // --- note
  const noteBox = view.querySelector("#note");
  const noteState = view.querySelector("#note-state");
  view.querySelector("#save-note").addEventListener("click", async () => {
    noteState.textContent = "saving…";
    try {
      await put(`/api/runs/${encodeURIComponent(id)}/note`, { note: noteBox.value });
      noteState.textContent = "saved " + new Date().toLocaleTimeString();
      noteState.className = "dim";
    } catch (e) { noteState.textContent = e.message; noteState.className = "error"; }
  });

  // --- curves, grouped by prefix
  const charts = [];
  const curvesBox = view.querySelector("#curves");
  const options = { xMode: "step", smoothing: 0, logY: false };
  for (const [prefix, members] of prefixGroups(keys)) {
    const section = el(`<div><h3>${esc(prefix || "metrics")}</h3><div class="grid"></div></div>`);
    curvesBox.append(section);
    for (const key of members) {
      const panel = el(`<div class="panel" data-key="${esc(key)}"></div>`);
      section.querySelector(".grid").append(panel);
      const chart = new CurveChart(panel, [{ run: id, key, label: key, t0: run.start_time }], { ...options, title: key, height: 200 });
      charts.push(chart);
    }
  }
  await Promise.all(charts.map((c) => c.load()));
  document.body.dataset.curvesReady = String(charts.length);
  view.querySelector("#x").addEventListener("change", (e) => { options.xMode = e.target.value; charts.forEach((c) => c.setOptions({ xMode: options.xMode })); });
  view.querySelector("#smooth").addEventListener("input", (e) => {
    view.querySelector("#smooth-v").textContent = e.target.value;
    charts.forEach((c) => c.setOptions({ smoothing: Number(e.target.value) }));
  });
  view.querySelector("#log").addEventListener("change", (e) => charts.forEach((c) => c.setOptions({ logY: e.target.checked })));

  // --- the rest, each on its own (a slow checkpoint check does not hold up the curves)
  get(`/api/runs/${encodeURIComponent(id)}/environment`).then((env) => {
    const box = view.querySelector("#environment");
    if (!Object.keys(env).length) { box.innerHTML = `<p class="dim">not recorded</p>`; return; }
    const torch = env.torch || {};
    const facts = Object.entries(env).filter(([, v]) => v === null || typeof v !== "object");
    for (const [k, v] of Object.entries(torch)) if (typeof v !== "object") facts.push(["torch " + k, v]);
    if ((env.gpus || []).length) facts.push(["gpus", env.gpus.map((g) => g.name || JSON.stringify(g)).join(", ")]);
    const packages = env.packages && typeof env.packages === "object" ? Object.entries(env.packages) : [];
    box.innerHTML = kvTable(facts) + (packages.length
      ? `<details><summary>${packages.length} package(s)</summary>${kvTable(packages.sort())}</details>` : "");
  });
  get(`/api/runs/${encodeURIComponent(id)}/system`).then((system) => {
    const box = view.querySelector("#system");
    const names = Object.keys(system).sort();
    if (!names.length) { box.innerHTML = `<p class="dim">no system samples</p>`; return; }
    for (const name of names) {
      const panel = el(`<div class="panel"></div>`);
      box.append(panel);
      timeChart(panel, name, [{ label: name, ...system[name] }]);
    }
  });
  get(`/api/runs/${encodeURIComponent(id)}/model`).then((model) => {
    const box = view.querySelector("#model");
    if (!model) { box.textContent = "not recorded (tracker.watch(model) records it)"; return; }
    box.className = "";
    const m = model.model || {};
    const params = m.parameters || {};
    const facts = [["class", m.class], ["parameters", params.total], ["trainable", params.trainable]];
    for (const part of ["optimizer", "scheduler", "loss", "data"]) if (model[part]) facts.push([part, model[part].class || model[part]]);
    box.innerHTML = kvTable(facts) + (m.repr ? `<details><summary>architecture</summary><pre class="diff">${esc(m.repr)}</pre></details>` : "");
  });
  const showCheckpoints = (list, checked) => {
    const box = view.querySelector("#checkpoints");
    if (!list.length) { box.textContent = "none"; return; }
    box.className = "";
    box.innerHTML = `<table class="data"><tr><th>name</th><th>epoch</th><th>step</th><th>metrics</th><th>best</th><th>verify</th></tr>${list.map((c) => `
      <tr><td class="mono">${esc(c.name)}</td><td>${esc(fmt(c.epoch))}</td><td>${esc(fmt(c.step))}</td>
      <td class="mono">${esc(Object.entries(c.metrics || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(" "))}</td><td>${c.is_best ? "★" : ""}</td>
      <td>${!checked ? "checking…" : c.ok ? `<span class="s-completed">ok</span>` : `<span class="error">DAMAGED: ${esc(c.problems.join("; "))}</span>`}</td></tr>`).join("")}</table>`;
  };
  get(`/api/runs/${encodeURIComponent(id)}/checkpoints`).then((list) => {
    showCheckpoints(list, false);
    if (list.length) get(`/api/runs/${encodeURIComponent(id)}/checkpoints`, { verify: 1 }).then((l) => showCheckpoints(l, true));
  });
  const artifacts = run.artifacts || [];
  view.querySelector("#artifacts").innerHTML = artifacts.length
    ? `<table class="data"><tr><th>name</th><th>size</th><th>sha256</th></tr>${artifacts.map((a) => `<tr><td><a href="#" data-artifact="${esc(a.name)}">${esc(a.name)}</a></td><td class="num">${esc(fmt(a.size))}</td><td class="mono">${esc((a.sha256 || "").slice(0, 16))}</td></tr>`).join("")}</table>`
    : `<p class="dim">none</p>`;
  view.querySelector("#artifacts").addEventListener("click", (e) => {
    const name = e.target.dataset.artifact;
    if (!name) return;
    e.preventDefault();
    download(`/api/runs/${encodeURIComponent(id)}/artifact`, { name }, name.split("/").pop());
  });

  // --- live: while the run trains, new points redraw the curves (at most once a second)
  if (run.status !== "running") return () => charts.forEach((c) => c.destroy());
  const live = view.querySelector("#live");
  live.innerHTML = `<span class="live">● live</span>`;
  let pending = false;
  const known = new Set(keys);
  const refresh = async () => {
    pending = false;
    await Promise.all(charts.map((c) => c.load()));
    document.body.dataset.liveRefreshes = String(Number(document.body.dataset.liveRefreshes || 0) + 1);
  };
  const feed = stream(`/api/runs/${encodeURIComponent(id)}/events`, (event, message) => {
    if (event !== "message") return;
    const fresh = Object.keys(message.metrics || {}).filter((k) => !known.has(k));
    if (fresh.length || (message.status && message.status !== "running")) { location.reload(); return; }
    if (!pending) { pending = true; setTimeout(refresh, 300); }
  }, () => { live.innerHTML = ""; });
  return () => { feed.close(); charts.forEach((c) => c.destroy()); };
}
