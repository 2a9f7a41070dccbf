// The runs table: virtualised rows (only the visible ones exist), pages fetched from the server as
// they scroll into view, sort by any column, the `ls --filter` grammar, grouping, selection.
import { get } from "./api.js";
import { esc, fmt, fmtTime, fmtDuration, badge, el } from "./util.js";

const PAGE = 100;
const ROW = 28;
const state = { filter: "", sort: "", order: "desc", group: "", params: null, metrics: null, selected: new Set() };

function columnsOf() {
  const fixed = [
    { id: "select", title: "", width: "28px", cell: (r) => `<input type="checkbox" data-id="${esc(r.run_id)}" ${state.selected.has(r.run_id) ? "checked" : ""}>` },
    { id: "name", title: "name", width: "minmax(140px,1.4fr)", cell: (r) => `<a href="#/run/${esc(r.run_id)}">${esc(r.name || r.run_id)}</a>` },
    { id: "experiment", title: "experiment", width: "minmax(100px,1fr)", cell: (r) => esc(r.experiment) },
    { id: "status", title: "status", width: "100px", cell: (r) => badge(r.status) },
    { id: "start_time", title: "started", width: "160px", cell: (r) => esc(fmtTime(r.start_time)) },
    { id: "duration", title: "took", width: "70px", cell: (r) => esc(fmtDuration(r.duration)), num: true },
  ];
  const params = (state.params || []).map((k) => ({ id: "params." + k, title: k, width: "minmax(70px,1fr)", cell: (r) => esc(fmt((r.params || {})[k])), num: true }));
  const metrics = (state.metrics || []).map((k) => ({ id: "metrics." + k, title: k, width: "minmax(80px,1fr)", cell: (r) => esc(fmt((r.metrics || {})[k])), num: true }));
  const cols = [...fixed, ...params, ...metrics];
  if (state.group) cols.splice(1, 0, { id: "group", title: state.group, width: "minmax(90px,1fr)", cell: (r, start) => (start ? `<span class="group-label">${esc(r.group)}</span>` : ""), nosort: true });
  return cols;
}

export async function runsPage(view) {
  performance.mark("runs-start");
  view.innerHTML = `
    <div class="toolbar">
      <input type="search" class="grow" id="filter" placeholder="filter, as unitrack ls --filter: params.lr > 0.01 and metrics.val/acc >= 0.9 (Enter)" value="${esc(state.filter)}">
      <label>group by <select id="group">
        <option value="">none</option><option value="experiment">experiment</option><option value="git">git commit</option>
        <option value="status">status</option><option value="tag">tag…</option></select></label>
      <button id="columns">columns</button>
      <button id="overlay" class="primary" disabled>overlay</button>
      <button id="compare" disabled>compare 2</button>
      <button id="clear" disabled>clear selection</button>
      <span id="count" class="dim"></span>
    </div>
    <div id="filter-error" class="error"></div>
    <div class="vtable"><div class="vhead" id="vhead"></div><div class="vbody" id="vbody"><div id="spacer"></div></div></div>`;
  const body = view.querySelector("#vbody");
  const spacer = view.querySelector("#spacer");
  const head = view.querySelector("#vhead");
  const count = view.querySelector("#count");
  const groupSelect = view.querySelector("#group");
  groupSelect.value = state.group.startsWith("tag:") ? "tag" : state.group;
  let pages = new Map();
  let total = 0;
  let generation = 0;
  let firstRender = true;
  let cols = [];

  if (state.params === null) {
    const known = await get("/api/columns");
    state.params = known.default_params;
    state.metrics = known.default_metrics;
  }

  function template() { return cols.map((c) => c.width).join(" "); }

  function drawHead() {
    cols = columnsOf();
    head.style.gridTemplateColumns = template();
    head.innerHTML = cols.map((c) => `<div data-col="${esc(c.id)}" class="${c.num ? "num" : ""} ${state.sort === c.id ? "sorted " + state.order : ""}" title="${esc(c.title)}">${esc(c.title)}</div>`).join("");
  }

  async function fetchPage(index) {
    if (pages.has(index)) return pages.get(index);
    const mine = generation;
    const promise = get("/api/runs", { filter: state.filter, sort: state.sort, order: state.order, group: state.group, offset: index * PAGE, limit: PAGE }, { raw: true })
      .then(async (response) => {
        total = Number(response.headers.get("X-Total-Count") || 0);
        const rows = await response.json();
        if (mine === generation) { pages.set(index, rows); }
        return rows;
      });
    pages.set(index, promise);
    return promise;
  }

  function rowAt(i) {
    const page = pages.get(Math.floor(i / PAGE));
    return Array.isArray(page) ? page[i % PAGE] : null;
  }

  function render() {
    spacer.style.height = total * ROW + "px";
    count.textContent = `${total.toLocaleString()} run(s)` + (state.selected.size ? ` · ${state.selected.size} selected` : "");
    const top = body.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - 10);
    const last = Math.min(total, Math.ceil((top + body.clientHeight) / ROW) + 10);
    const missing = new Set();
    const html = [];
    for (let i = first; i < last; i++) {
      const r = rowAt(i);
      if (!r) { missing.add(Math.floor(i / PAGE)); continue; }
      const previous = i > 0 ? rowAt(i - 1) : null;
      const start = state.group && (!previous || previous.group !== r.group);
      html.push(`<div class="vrow ${state.selected.has(r.run_id) ? "selected" : ""} ${start && i > 0 ? "group-start" : ""}" style="top:${i * ROW}px;grid-template-columns:${template()}">`
        + cols.map((c) => `<div class="${c.num ? "num" : ""}">${c.cell(r, start)}</div>`).join("") + "</div>");
    }
    spacer.innerHTML = html.join("");
    for (const index of missing) fetchPage(index).then(render);
    updateButtons();
    if (firstRender && html.length + 0 >= Math.min(total, 1)) {
      firstRender = false;
      performance.mark("runs-interactive");
      performance.measure("runs-page", "runs-start", "runs-interactive");
      document.body.dataset.runsReady = "1";
    }
  }

  async function reload() {
    generation += 1;
    pages = new Map();
    drawHead();
    try {
      await fetchPage(0);
      view.querySelector("#filter-error").textContent = "";
    } catch (e) {
      view.querySelector("#filter-error").textContent = e.message;
      total = 0;
    }
    body.scrollTop = 0;
    render();
  }

  function updateButtons() {
    const n = state.selected.size;
    view.querySelector("#overlay").disabled = n < 1;
    view.querySelector("#compare").disabled = n !== 2;
    view.querySelector("#clear").disabled = n < 1;
  }

  body.addEventListener("scroll", () => requestAnimationFrame(render));
  body.addEventListener("change", (e) => {
    const id = e.target.dataset.id;
    if (!id) return;
    if (e.target.checked) state.selected.add(id); else state.selected.delete(id);
    render();
  });
  head.addEventListener("click", (e) => {
    const id = e.target.dataset.col;
    const col = cols.find((c) => c.id === id);
    if (!id || id === "select" || (col && col.nosort)) return;
    if (state.sort === id) state.order = state.order === "desc" ? "asc" : "desc";
    else { state.sort = id; state.order = "desc"; }
    reload();
  });
  view.querySelector("#filter").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { state.filter = e.target.value.trim(); reload(); }
  });
  groupSelect.addEventListener("change", () => {
    let value = groupSelect.value;
    if (value === "tag") {
      const name = prompt("group by which tag?");
      value = name ? "tag:" + name : "";
    }
    state.group = value;
    reload();
  });
  view.querySelector("#overlay").addEventListener("click", () => { location.hash = "#/overlay?runs=" + [...state.selected].join(","); });
  view.querySelector("#compare").addEventListener("click", () => {
    const [a, b] = [...state.selected];
    location.hash = `#/compare?a=${a}&b=${b}`;
  });
  view.querySelector("#clear").addEventListener("click", () => { state.selected.clear(); render(); });
  view.querySelector("#columns").addEventListener("click", async (e) => {
    const open = view.querySelector(".columns-picker");
    if (open) { open.remove(); return; }
    const known = await get("/api/columns", { filter: state.filter });
    const box = (kind, keys, chosen) => keys.map((k) => `<label><input type="checkbox" data-kind="${kind}" value="${esc(k)}" ${chosen.includes(k) ? "checked" : ""}> ${esc(k)}</label><br>`).join("");
    const picker = el(`<div class="columns-picker"><b>params</b><br>${box("params", known.params, state.params)}<b>metrics</b><br>${box("metrics", known.metrics, state.metrics)}</div>`);
    picker.style.left = e.target.offsetLeft + "px";
    picker.addEventListener("change", (ev) => {
      const kind = ev.target.dataset.kind;
      const chosen = [...picker.querySelectorAll(`input[data-kind="${kind}"]:checked`)].map((i) => i.value);
      state[kind] = chosen;
      drawHead();
      render();
    });
    e.target.after(picker);
  });
  await reload();
}
