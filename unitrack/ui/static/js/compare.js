// Two runs side by side — what `unitrack compare` shows — and `unitrack explain` with its evidence.
import { get } from "./api.js";
import { esc, fmt, fmtDuration, diffLines, query } from "./util.js";

const winner = (w) => ({ a: "A", b: "B" }[w] || w || "-");

function change(m) {
  const parts = [];
  if (m.abs_change !== null && m.abs_change !== undefined) parts.push((m.abs_change >= 0 ? "+" : "") + fmt(m.abs_change));
  if (m.rel_change !== null && m.rel_change !== undefined) parts.push(`(${(m.rel_change * 100).toFixed(1)}%)`);
  return parts.join(" ") || "-";
}

function configSection(config) {
  const rows = [
    ...config.changed.map((c) => `<tr class="changed"><td class="mono">${esc(c.key)}</td><td>${esc(fmt(c.a))}</td><td>${esc(fmt(c.b))}</td><td>${c.ratio ? "×" + esc(fmt(c.ratio)) : "changed"}</td></tr>`),
    ...config.added.map((c) => `<tr><td class="mono">${esc(c.key)}</td><td>-</td><td>${esc(fmt(c.value))}</td><td>added</td></tr>`),
    ...config.removed.map((c) => `<tr><td class="mono">${esc(c.key)}</td><td>${esc(fmt(c.value))}</td><td>-</td><td>removed</td></tr>`),
  ];
  return rows.length ? `<table class="data" id="config-diff"><tr><th>key</th><th>A</th><th>B</th><th>change</th></tr>${rows.join("")}</table>` : `<p class="dim">no differences</p>`;
}

function metricsSection(metrics) {
  if (!metrics.length) return `<p class="dim">no metrics in common</p>`;
  return `<table class="data"><tr><th>metric</th><th>A last</th><th>B last</th><th>change</th><th>A best</th><th>B best</th><th>same step</th><th>winner</th></tr>${metrics.map((m) => `
    <tr><td class="mono">${esc(m.key)}</td><td>${esc(fmt(m.a.last))}</td><td>${esc(fmt(m.b.last))}</td><td>${esc(change(m))}</td>
    <td>${esc(fmt(m.a.best))}</td><td>${esc(fmt(m.b.best))}</td>
    <td>${m.same_step ? esc(`@${m.same_step.step}: ${fmt(m.same_step.a)} vs ${fmt(m.same_step.b)}`) : "-"}</td>
    <td class="win">${esc(winner(m.winner))}</td></tr>`).join("")}</table>`;
}

function modelSection(model) {
  if (!Object.values(model.recorded || {}).some(Boolean)) return `<p class="dim">not recorded (tracker.watch(model) records it)</p>`;
  const rows = [];
  if (model.parameters) rows.push(["parameters", model.parameters.a, model.parameters.b, model.parameters.ratio ? "×" + fmt(model.parameters.ratio) : ""]);
  if (model.class) rows.push(["class", model.class.a, model.class.b, model.class.same ? "" : "changed"]);
  rows.push(["architecture", "", "", (model.architecture || {}).changed ? "changed" : "same"]);
  for (const part of ["optimizer", "scheduler", "loss", "data"]) {
    const diff = model[part] || {};
    for (const c of diff.changed || []) rows.push([`${part}.${c.key}`, c.a, c.b, "changed"]);
    for (const c of diff.added || []) rows.push([`${part}.${c.key}`, "-", c.value, "added"]);
    for (const c of diff.removed || []) rows.push([`${part}.${c.key}`, c.value, "-", "removed"]);
  }
  const arch = model.architecture || {};
  const entries = [...(arch.changed ? [arch] : []), ...(model.classes || []), ...(model.functions || [])];
  return `<table class="data"><tr><th>fact</th><th>A</th><th>B</th><th>change</th></tr>${rows.map((r) => `<tr><td>${esc(r[0])}</td><td>${esc(fmt(r[1]))}</td><td>${esc(fmt(r[2]))}</td><td>${esc(r[3])}</td></tr>`).join("")}</table>`
    + entries.map((e) => `<h3>${esc(e.name)} <span class="dim">${esc(e.status)}</span></h3>${diffLines(e.diff)}`).join("");
}

function environmentSection(evidence) {
  const rows = [];
  for (const [key, pair] of Object.entries(evidence.environment.facts || {})) if (!pair.same) rows.push([key, pair.a, pair.b]);
  const packages = evidence.environment.packages || { changed: [], added: [], removed: [] };
  for (const p of packages.changed) rows.push([`package ${p.name}`, p.a, p.b]);
  if (packages.added.length || packages.removed.length) rows.push(["packages only in one", packages.removed.length, packages.added.length]);
  for (const [key, pair] of Object.entries(evidence.git || {})) if (pair && typeof pair === "object" && "same" in pair && !pair.same) rows.push([`git ${key}`, pair.a, pair.b]);
  const system = evidence.system || {};
  if (system.duration_s) rows.push(["duration", fmtDuration(system.duration_s.a), fmtDuration(system.duration_s.b)]);
  for (const key of ["peak_memory_mb", "gpu_utilization_percent", "gpu_memory_mb", "exit_code"]) {
    const pair = system[key];
    if (pair && (pair.a !== null || pair.b !== null)) rows.push([key, pair.a, pair.b]);
  }
  return `<table class="data"><tr><th>fact</th><th>A</th><th>B</th></tr>${rows.map((r) => `<tr><td>${esc(r[0])}</td><td>${esc(fmt(r[1]))}</td><td>${esc(fmt(r[2]))}</td></tr>`).join("")}</table>`;
}

function weightsSection(weights) {
  if (!weights || !(weights.layers || []).length) return `<p class="dim">no weights recorded in both runs</p>`;
  return `<p class="dim">${esc(weights.source_a)} → ${esc(weights.source_b)}</p><table class="data"><tr><th>layer</th><th>shape</th><th>relative</th><th>cosine</th><th>changed</th></tr>${weights.layers.slice(0, 20).map((l) => `
    <tr><td class="mono">${esc(l.name)}</td><td>${esc(l.shape.join("×"))}</td><td>${esc(fmt(l.relative))}</td><td>${esc(fmt(l.cosine))}</td><td>${(l.changed_fraction * 100).toFixed(0)}%</td></tr>`).join("")}</table>`;
}

function explanationSection(x) {
  const causes = (x.causes || []).map((c, i) => `<div class="cause"><b>${i + 1}. ${esc(c.title)}</b> <span class="dim">(confidence ${Number(c.score).toFixed(2)})</span>
    <ul>${(c.evidence || []).map((f) => `<li>${esc(f)}</li>`).join("")}</ul></div>`).join("");
  const next = (x.next_steps || []).length ? `<h3>What to try next</h3><ul>${x.next_steps.map((s) => `<li>${esc(s)}</li>`).join("")}</ul>` : "";
  return `<p><b id="headline">${esc(x.headline)}</b> <span class="dim">explained by ${esc(x.provider)}${x.model ? " (" + esc(x.model) + ")" : ""}</span></p>
    ${x.notice ? `<p class="notice">${esc(x.notice)}</p>` : ""}${causes || `<p class="dim">no likely cause found in the recorded evidence</p>`}${next}`;
}

export async function comparePage(view) {
  const params = query();
  const a = params.get("a"), b = params.get("b");
  if (!a || !b) { view.innerHTML = `<p>Select two runs on the <a href="#/">runs page</a>.</p>`; return null; }
  document.getElementById("crumbs").textContent = "/ compare";
  view.innerHTML = `<h1>Compare</h1><div id="who" class="dim">loading…</div>
    <h2>Why the results differ</h2><div id="explain" class="dim">explaining…</div>
    <h2>Config (differences)</h2><div id="config"></div><h2>Metrics</h2><div id="metrics"></div>
    <h2>Model</h2><div id="model"></div><h2>Environment, git, system (differences)</h2><div id="environment"></div>
    <h2>Weights</h2><div id="weights"></div>`;
  const [evidence, explanation] = await Promise.all([get("/api/compare", { a, b }), get("/api/explain", { a, b })]);
  const runs = evidence.runs;
  view.querySelector("#who").innerHTML = ["a", "b"].map((side) => {
    const r = runs[side];
    return `<div><b>${side.toUpperCase()}</b> <a href="#/run/${esc(r.run_id)}">${esc(r.run_id)}</a> ${esc(r.name || "")} · ${esc(r.status)} · git ${esc((r.git_commit || "-").slice(0, 8))} ${esc(r.message || "")}</div>`;
  }).join("");
  view.querySelector("#who").className = "";
  view.querySelector("#explain").className = "";
  view.querySelector("#explain").innerHTML = explanationSection(explanation);
  view.querySelector("#config").innerHTML = configSection(evidence.config);
  view.querySelector("#metrics").innerHTML = metricsSection(evidence.metrics);
  view.querySelector("#model").innerHTML = modelSection(evidence.model);
  view.querySelector("#environment").innerHTML = environmentSection(evidence);
  view.querySelector("#weights").innerHTML = weightsSection(evidence.weights);
  document.body.dataset.compareReady = "1";
  return null;
}
