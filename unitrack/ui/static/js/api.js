// The page's only data source: the JSON API of this server, with the token when one is needed.
const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";

// The token arrives once, in the URL the page was opened with (#token=T): kept for this tab,
// removed from the address bar so it is neither bookmarked nor shown.
let token = sessionStorage.getItem("unitrack-token") || "";
{
  const match = location.hash.match(/[#&]token=([^&]+)/);
  if (match) {
    token = decodeURIComponent(match[1]);
    sessionStorage.setItem("unitrack-token", token);
    const rest = location.hash.replace(/[#&]?token=[^&]+/, "").replace(/^#?&?/, "");
    history.replaceState(null, "", location.pathname + "#" + (rest || "/"));
  }
}

export const tokenMissing = () => meta("unitrack-token-required") === "1" && !token;

function headers(extra = {}) {
  const h = { ...extra };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

export function url(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return path + (s ? "?" + s : "");
}

async function answer(response) {
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

export async function get(path, params = {}, options = {}) {
  const response = await answer(await fetch(url(path, params), { headers: headers(), signal: options.signal }));
  return options.raw ? response : response.json();
}

export async function put(path, body) {
  const write = token || meta("unitrack-write-token");
  const response = await answer(await fetch(path, {
    method: "PUT", headers: { "Authorization": "Bearer " + write, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
  return response.json();
}

// Server-sent events read with fetch (EventSource cannot send the Authorization header).
export function stream(path, onMessage, onEnd) {
  const abort = new AbortController();
  (async () => {
    try {
      const response = await answer(await fetch(path, { headers: headers(), signal: abort.signal }));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          const event = (block.split("\n").find((l) => l.startsWith("event: ")) || "event: message").slice(7);
          if (data) onMessage(event, JSON.parse(data));
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") console.warn("live stream ended:", e.message);
    }
    if (onEnd) onEnd();
  })();
  return { close: () => abort.abort() };
}

export async function download(path, params, filename) {
  const response = await get(path, params, { raw: true });
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
