// The router: one page, hash routes (#/, #/run/ID, #/overlay?runs=..., #/compare?a=&b=, #/weights/ID,
// #/sweep/EXPERIMENT[?metric=KEY]).
import { tokenMissing } from "./api.js";
import { esc } from "./util.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { overlayPage } from "./overlay.js";
import { comparePage } from "./compare.js";
import { weightsPage } from "./weights.js";
import { sweepPage } from "./sweep.js";

const routes = [
  [/^#?\/?$/, () => runsPage],
  [/^#\/run\/([^/?]+)/, (m) => (view) => runPage(view, decodeURIComponent(m[1]))],
  [/^#\/weights\/([^/?]+)/, (m) => (view) => weightsPage(view, decodeURIComponent(m[1]))],
  [/^#\/sweep\/([^/?]+)(?:\?metric=([^&]+))?/, (m) => (view) => sweepPage(view, decodeURIComponent(m[1]), m[2] && decodeURIComponent(m[2]))],
  [/^#\/overlay/, () => overlayPage],
  [/^#\/compare/, () => comparePage],
];

let cleanup = null;

async function show() {
  const view = document.getElementById("view");
  if (cleanup) { try { cleanup(); } catch (e) { /* page already gone */ } cleanup = null; }
  document.getElementById("crumbs").textContent = "";
  view.innerHTML = "";
  if (tokenMissing()) {
    view.innerHTML = `<p class="error">This dashboard needs its token: open the URL <code>unitrack ui</code> printed (it ends with #token=...).</p>`;
    return;
  }
  const hash = location.hash || "#/";
  for (const [pattern, make] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    try {
      cleanup = (await make(match)(view)) || null;
    } catch (e) {
      view.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
    return;
  }
  view.innerHTML = `<p class="error">No page ${esc(hash)}. <a href="#/">All runs</a></p>`;
}

window.addEventListener("hashchange", show);
show();
