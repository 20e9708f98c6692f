// The siammask console: the streams from GET /api/streams (every second and after each action),
// pictures and events over Server-Sent Events, actions as API calls. The cookie set by the
// printed URL authenticates every request; nothing here holds the token.
"use strict";

const EVENTS_SHOWN = 300;
const cards = new Map();   // stream id -> {root, img, band, note, figures, badge, table, message, pause}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch("/api/" + path, init);
  let data = {};
  try { data = await reply.json(); } catch (e) { data = {error: `HTTP ${reply.status}`}; }
  if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
  return data;
}

function say(node, text, ok = false) {
  node.textContent = text;
  node.className = ok ? "message ok" : "message";
}

const fmt = (value, digits = 1) => (value === null || value === undefined) ? "n/a" : Number(value).toFixed(digits);

function card(id) {
  if (cards.has(id)) return cards.get(id);
  const q = encodeURIComponent(id);
  const c = {};
  c.badge = el("span", {class: "badge"});
  c.img = el("img", {alt: `stream ${id}`});
  c.band = el("div", {class: "band"});
  c.note = el("div", {class: "note"}, "waiting for a picture...");
  const picture = el("div", {class: "picture", "data-picture": id}, c.img, c.band, c.note);
  c.figures = el("div", {class: "figures"});
  c.pause = el("button", {"data-action": "pause"}, "Pause");
  const snapshot = el("a", {href: `/api/streams/${q}/snapshot.png`, download: `${id}.png`},
                      el("button", {"data-action": "snapshot", type: "button"}, "Snapshot"));
  const remove = el("button", {"data-action": "remove-stream"}, "Remove stream");
  c.message = el("p", {class: "message", role: "status"});
  c.table = el("tbody");
  const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "target"), el("th", {}, "state"),
    el("th", {}, "score"), el("th", {}, "last frame"), el("th"))), c.table);
  c.root = el("article", {class: "stream", "data-stream": id},
              el("h3", {}, id, c.badge), picture, c.figures, el("div", {class: "actions"}, c.pause, snapshot, remove),
              c.message, table);
  c.pause.addEventListener("click", () => act(c, "POST", `streams/${q}/${c.paused ? "resume" : "pause"}`));
  remove.addEventListener("click", () => act(c, "DELETE", `streams/${q}`));
  drawing(picture, c, q);
  document.getElementById("streams").append(c.root);
  cards.set(id, c);
  return c;
}

async function act(c, method, path, body) {
  try {
    const reply = await api(method, path, body);
    say(c.message, "target" in reply && method === "POST" ? `target ${reply.target} added` : "done", true);
  } catch (e) {
    say(c.message, e.message);
  }
  refresh();
}

// Drag a box on the picture: display pixels scaled to the stream's (the JPEG is the frame at its size).
function drawing(picture, c, q) {
  let start = null;
  const at = (event) => {
    const r = c.img.getBoundingClientRect();
    return [Math.min(Math.max(event.clientX - r.left, 0), r.width), Math.min(Math.max(event.clientY - r.top, 0), r.height)];
  };
  picture.addEventListener("mousedown", (event) => {
    if (event.button !== 0) return;
    start = at(event);
    event.preventDefault();
  });
  window.addEventListener("mousemove", (event) => {
    if (!start) return;
    const [x, y] = at(event);
    Object.assign(c.band.style, {display: "block", left: `${Math.min(x, start[0])}px`, top: `${Math.min(y, start[1])}px`,
                                 width: `${Math.abs(x - start[0])}px`, height: `${Math.abs(y - start[1])}px`});
  });
  window.addEventListener("mouseup", (event) => {
    if (!start) return;
    const [x, y] = at(event);
    const [x0, y0] = start;
    start = null;
    c.band.style.display = "none";
    if (Math.abs(x - x0) < 3 && Math.abs(y - y0) < 3) return;  // a click, not a box
    if (!c.img.naturalWidth) { say(c.message, "no picture yet: wait for the first frame, then draw the box"); return; }
    const r = c.img.getBoundingClientRect();
    const sx = c.img.naturalWidth / r.width, sy = c.img.naturalHeight / r.height;
    const box = [Math.min(x, x0) * sx, Math.min(y, y0) * sy, Math.abs(x - x0) * sx, Math.abs(y - y0) * sy]
      .map((v) => Math.round(v * 10) / 10);
    act(c, "POST", `streams/${q}/targets`, {box});
  });
}

function show(streams, restarts) {
  document.getElementById("empty").hidden = streams.length > 0;
  const seen = new Set();
  for (const s of streams) {
    seen.add(s.id);
    const c = card(s.id);
    c.paused = s.paused;
    c.pause.textContent = s.paused ? "Resume" : "Pause";
    c.badge.textContent = s.paused ? "paused" : s.state;
    c.badge.className = `badge ${s.paused ? "paused" : s.state}`;
    const f = s.figures;
    c.figures.textContent = s.paused ? "paused" : !f ? "no frames yet" :
      `${fmt(f.fps)} fps (read ${fmt(f.read_fps)}), latency p50 ${fmt(f.latency_p50_ms, 0)} ms ` +
      `p99 ${fmt(f.latency_p99_ms, 0)} ms, dropped ` +
      Object.entries(f.dropped).map(([k, v]) => `${k} ${v}`).join(" ");
    if (c.img.naturalWidth) c.note.textContent = s.paused ? "paused" : "";
    const rows = s.targets.map((t) => {
      const remove = el("button", {"data-action": "remove-target"}, "Remove");
      remove.addEventListener("click", () => act(c, "DELETE", `streams/${encodeURIComponent(s.id)}/targets/${t.id}`));
      return el("tr", {"data-target": String(t.id), "data-state": t.state},
                el("td", {}, String(t.id)), el("td", {class: `state-${t.state}`}, t.state),
                el("td", {}, fmt(t.score, 2)), el("td", {}, String(t.frame)), el("td", {}, remove));
    });
    for (const p of s.pending) {
      rows.push(el("tr", {"data-target": String(p), "data-state": "pending"}, el("td", {}, String(p)),
                   el("td", {class: "state-pending"}, "starting"), el("td"), el("td"), el("td")));
    }
    c.table.replaceChildren(...rows);
  }
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.root.remove(); cards.delete(id); }
  }
  document.getElementById("restarts").textContent =
    Object.keys(restarts).length ? "restarts: " + Object.entries(restarts).map(([k, v]) => `${k} ${v}`).join(", ") : "";
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const data = await api("GET", "streams");
    show(data.streams, data.restarts);
    document.getElementById("status").textContent = "connected";
  } catch (e) {
    document.getElementById("status").textContent = `not connected: ${e.message}`;
  } finally {
    refreshing = false;
  }
}

function logEvent(e) {
  const list = document.getElementById("events");
  const time = new Date(e.time * 1000).toLocaleTimeString();
  const what = [e.event.replaceAll("_", " "), e.stream !== undefined ? `stream ${e.stream}` : e.stage,
                e.target !== undefined ? `target ${e.target}` : "", e.frame !== undefined ? `frame ${e.frame}` : "",
                e.why || e.error || ""].filter(Boolean).join(", ");
  list.prepend(el("li", {class: e.event, "data-event": e.event}, `${time} ${what}`));
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

function live() {
  const events = new EventSource("/api/events");
  events.onmessage = (m) => { logEvent(JSON.parse(m.data)); refresh(); };
  const frames = new EventSource("/api/frames");
  frames.onmessage = (m) => {
    const f = JSON.parse(m.data);
    const c = cards.get(f.stream);
    if (!c) return;
    const url = "data:image/jpeg;base64," + f.jpeg;
    const next = new Image();  // decoded off screen, then shown whole: no half-drawn picture
    next.src = url;
    next.decode().then(() => { c.img.src = url; c.note.textContent = ""; }, () => {});
  };
}

document.getElementById("add-stream").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById("add-stream-message");
  const field = (name) => form.elements.namedItem(name);
  const body = {id: field("id").value.trim(), source: field("source").value.trim()};
  if (field("loop").checked) body.loop = true;
  if (field("box").value.trim()) body.box = field("box").value.split(",").map((v) => Number(v.trim()));
  try {
    await api("POST", "streams", body);
    say(message, `stream ${body.id} added`, true);
    form.reset();
  } catch (e) {
    say(message, e.message);
  }
  refresh();
});

refresh();
setInterval(refresh, 1000);
live();
