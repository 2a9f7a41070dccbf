// Small helpers shared by the pages: escaping, number / time formatting, element building.
export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

export function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (!isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(6));
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");

export function fmtDuration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

export const badge = (status) => `<span class="badge s-${esc(status)}">${esc(status)}</span>`;

export function el(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

export function kvTable(entries) {
  const rows = entries.filter(([, v]) => v !== undefined).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="mono">${esc(fmt(v))}</td></tr>`);
  return rows.length ? `<table class="kv">${rows.join("")}</table>` : `<p class="dim">none</p>`;
}

export function diffLines(lines) {
  return `<pre class="diff">${(lines || []).map((l) => {
    const cls = l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : "";
    return `<span class="${cls}">${esc(l)}</span>`;
  }).join("\n")}</pre>`;
}

export const PALETTE = ["#2f6fde", "#e8710a", "#1e8e3e", "#c5221f", "#9334e6", "#12a4af", "#d01884", "#7a6a00", "#5f6368", "#185abc", "#b06000", "#137333"];

export function query() {
  const [, q = ""] = location.hash.split("?");
  return new URLSearchParams(q);
}
