// The AMI Agent chat page: threads from the agent's SQLite memory, answers streamed from /v1/chat/completions,
// and every plan drawn from the states the world model predicted. No framework, no request leaves this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const state = { thread: null, busy: false };
const intro = document.getElementById("empty").cloneNode(true);
window.amiTimings = []; // per answer: when it was sent, its first token arrived, the plan was found (ms epoch)

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.setAttribute("class", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function showError(message) {
  const b = $("#banner");
  b.textContent = message;
  b.hidden = !message;
}

async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, options);
  } catch (e) {
    throw new Error(`The agent's server at ${location.origin} is not answering. Is \`ami-agent serve\` still running?`);
  }
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try { detail = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(`The server refused the request: ${detail}`);
  }
  return res;
}

// ---- threads ----------------------------------------------------------------------------------------------------
function newThreadId() {
  return "web-" + Math.random().toString(36).slice(2, 10);
}

async function loadThreads() {
  try {
    const data = await (await api("/api/threads")).json();
    renderThreads(data.threads);
  } catch (e) {
    showError(e.message);
  }
}

function renderThreads(threads) {
  const list = $("#threads");
  list.replaceChildren();
  for (const t of threads) {
    const li = el("li", { class: t.thread === state.thread ? "active" : "", "data-thread": t.thread });
    const a = el("a", { href: "#" + encodeURIComponent(t.thread), text: t.title || t.thread, title: t.title });
    const del = el("button", { class: "delete", type: "button", title: "Delete this conversation", text: "×" });
    del.addEventListener("click", async () => {
      try {
        await api("/api/threads/" + encodeURIComponent(t.thread), { method: "DELETE" });
        if (t.thread === state.thread) location.hash = "";
        await loadThreads();
      } catch (e) { showError(e.message); }
    });
    li.append(a, del);
    list.append(li);
  }
}

async function openThread(id) {
  state.thread = id;
  document.querySelectorAll("#threads li").forEach((li) => li.classList.toggle("active", li.dataset.thread === id));
  const box = $("#messages");
  box.replaceChildren();
  let data;
  try {
    const res = await fetch("/api/threads/" + encodeURIComponent(id));
    if (res.status === 404) { box.append(emptyNote()); return; } // a new conversation
    if (!res.ok) throw new Error(`The server could not load this conversation (${res.status}).`);
    data = await res.json();
  } catch (e) {
    showError(e.message.startsWith("The ") ? e.message : `The agent's server at ${location.origin} is not answering.`);
    return;
  }
  for (const m of data.messages) {
    if (m.role === "user") box.append(userBubble(m.content));
    else if (m.role === "assistant") {
      const b = assistantBubble();
      b.text.textContent = m.content;
      finish(b, m.status || (m.view ? m.view.status : "chat"), m.view);
      box.append(b.node);
    }
  }
  box.scrollTop = box.scrollHeight;
}

function emptyNote() {
  return intro.cloneNode(true);
}

// ---- messages ---------------------------------------------------------------------------------------------------
function userBubble(text) {
  return el("div", { class: "msg user", text });
}

function assistantBubble() {
  const badge = el("span", { class: "status", hidden: "" });
  const text = el("div", { class: "text" });
  const node = el("div", { class: "msg assistant" }, badge, text);
  return { node, badge, text };
}

function finish(b, status, view) {
  b.badge.hidden = false;
  b.badge.className = "status " + status;
  b.badge.textContent = status === "no_plan" ? "no plan" : status;
  if (status === "clarify") b.node.append(el("div", { class: "believed", text: "Answer in the box below; the conversation goes on from here." }));
  if (view) b.node.append(planPanel(view));
}

async function send(text) {
  if (state.busy || !text.trim()) return;
  showError("");
  if (!state.thread) { state.thread = newThreadId(); history.replaceState(null, "", "#" + state.thread); }
  const box = $("#messages");
  box.querySelectorAll(".empty").forEach((n) => n.remove());
  box.append(userBubble(text));
  const b = assistantBubble();
  b.text.textContent = "…";
  box.append(b.node);
  box.scrollTop = box.scrollHeight;
  state.busy = true;
  $("#send").disabled = true;
  const timing = { sent: Date.now(), firstToken: null, done: null, planFoundAt: null };
  let got = "";
  let final = null;
  try {
    const res = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "ami-agent", stream: true, thread_id: state.thread, messages: [{ role: "user", content: text }] }),
    });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data:")) continue;
        const payload = event.slice(5).trim();
        if (payload === "[DONE]") continue;
        const chunk = JSON.parse(payload);
        const piece = chunk.choices && chunk.choices[0].delta.content;
        if (piece) {
          if (timing.firstToken === null) { timing.firstToken = Date.now(); b.text.textContent = ""; }
          got += piece;
          b.text.textContent = got;
          box.scrollTop = box.scrollHeight;
        }
        if (chunk.ami) final = chunk.ami;
      }
    }
    if (!final) throw new Error("The answer stopped before it was complete: the server may have gone down.");
    const planned = (final.trace || []).find((t) => t.node === "plan");
    timing.planFoundAt = planned && planned.found_at ? planned.found_at * 1000 : null;
    if (!got) b.text.textContent = "(no answer)";
    finish(b, final.status, final.view);
  } catch (e) {
    b.text.textContent = got || "";
    finish(b, "error", null);
    b.node.append(el("div", { class: "believed", text: e.message }));
    showError(e.message);
  } finally {
    timing.done = Date.now();
    window.amiTimings.push(timing);
    state.busy = false;
    $("#send").disabled = false;
    box.scrollTop = box.scrollHeight;
    loadThreads();
  }
}

// ---- the plan, drawn ----------------------------------------------------------------------------------------------
function planPanel(v) {
  const panel = el("div", { class: "plan", "data-status": v.status });
  if (v.constraints && v.constraints.length) {
    panel.append(el("h3", { text: v.status === "solved" ? "Rules the planner kept" : "Rules" }), listOf(v.constraints, "rules"));
  }
  if (v.status !== "solved") {
    if (v.reason) panel.append(el("h3", { text: "Why no plan" }), el("p", { text: v.reason }));
    if (v.init && v.init.length) panel.append(el("h3", { text: "The start as read" }), frames(v, [v.init], ["start"]));
    return panel;
  }
  const captions = ["start"].concat(v.steps.map((s, i) => `${i + 1}. ${s}`));
  panel.append(
    el("h3", { text: `The plan, step by step (${v.steps.length} steps)` }),
    el("div", { class: "believed", text: "Drawn from the facts the world model predicted after each step (its own read-out): what the planner believed, not a simulation." }),
    frames(v, v.states, captions),
  );
  const et = v.energy_trace || {};
  if (et.critic && et.critic.length) panel.append(el("h3", { text: "Energies along the plan" }), energyPlot(et));
  panel.append(el("h3", { text: "The plan as the decoder wrote it" }), el("pre", { class: "decoded", text: v.text }));
  return panel;
}

function listOf(items, cls) {
  const ul = el("ul", { class: cls });
  for (const i of items) ul.append(el("li", { text: i }));
  return ul;
}

function frames(v, states, captions) {
  const strip = el("div", { class: "strip" });
  states.forEach((facts, i) => {
    const picture = v.kind === "blocks" ? drawBlocks(facts, v.names) : factTable(facts);
    picture.classList.add("step-picture");
    strip.append(el("div", { class: "frame" }, picture, el("div", { class: "caption", text: captions[i] || "" })));
  });
  return strip;
}

function colourOf(word) {
  if (word && CSS.supports("color", word)) return word;
  let h = 0;
  for (const c of word || "?") h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 55% 55%)`;
}

function drawBlocks(facts, names) {
  const W = 40, H = 26, GAP = 8;
  const up = {}, onTable = [], placed = new Set();
  let held = null;
  for (const f of facts) {
    if (f[0] === "on") { up[f[2]] = f[1]; placed.add(f[1]); }
    else if (f[0] === "ontable") { onTable.push(f[1]); placed.add(f[1]); }
    else if (f[0] === "holding") { held = f[1]; placed.add(f[1]); }
  }
  const towers = onTable.sort().map((b) => { const t = [b]; const seen = new Set([b]); while (up[t[t.length - 1]] && !seen.has(up[t[t.length - 1]])) { t.push(up[t[t.length - 1]]); seen.add(t[t.length - 1]); } return t; });
  const tallest = Math.max(1, ...towers.map((t) => t.length));
  const width = Math.max(2, towers.length) * (W + GAP) + GAP;
  const height = (tallest + 2) * H + 24;
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const label = [];
  const block = (b, x, y) => {
    const g = el("svg:g", { "data-block": b });
    g.append(el("svg:rect", { x, y, width: W, height: H - 2, rx: 3, fill: colourOf(names[b]), stroke: "#333", "stroke-width": 1 }));
    g.append(el("svg:text", { x: x + W / 2, y: y + H / 2 + 3, "text-anchor": "middle", "font-size": 9, fill: "white", stroke: "#222", "stroke-width": 2, "paint-order": "stroke", text: names[b] || b }));
    svg.append(g);
    label.push(names[b] || b);
  };
  // the hand, at the top
  const handX = width / 2;
  svg.append(el("svg:line", { x1: handX, y1: 0, x2: handX, y2: 8, stroke: "#555", "stroke-width": 3 }));
  svg.append(el("svg:path", { d: `M${handX - W / 2 - 4} 14 L${handX - W / 2 - 4} 8 L${handX + W / 2 + 4} 8 L${handX + W / 2 + 4} 14`, fill: "none", stroke: "#555", "stroke-width": 3 }));
  if (held) block(held, handX - W / 2, 10);
  const tableY = height - 14;
  svg.append(el("svg:rect", { x: 0, y: tableY, width, height: 6, fill: "#8b6b4a" }));
  towers.forEach((t, i) => t.forEach((b, j) => block(b, GAP + i * (W + GAP), tableY - (j + 1) * H)));
  svg.setAttribute("aria-label", label.length ? `blocks: ${label.join(", ")}` : "no blocks read");
  return svg;
}

function factTable(facts) {
  const table = el("table");
  for (const f of facts) table.append(el("tr", {}, el("td", { text: f.join(" ") })));
  return table;
}

function energyPlot(et) {
  const ys = et.critic, n = ys.length;
  const w = Math.max(220, 40 * n), h = 110, pad = 24;
  const max = Math.max(1, ...ys);
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, n - 1);
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  const svg = el("svg:svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "critic energy along the plan" });
  svg.append(el("svg:line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "#aab" }));
  svg.append(el("svg:polyline", { points: ys.map((v, i) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: "#3b82f6", "stroke-width": 2 }));
  ys.forEach((v, i) => {
    svg.append(el("svg:circle", { cx: x(i), cy: y(v), r: 3, fill: "#3b82f6" }));
    svg.append(el("svg:text", { x: x(i), y: h - 8, "text-anchor": "middle", "font-size": 10, fill: "#555", text: i === 0 ? "start" : String(i) }));
  });
  const task = et.task || [];
  const caption = `critic: predicted steps to go, ${ys[0].toFixed(1)} at the start to ${ys[n - 1].toFixed(2)} at the end` +
    (task.length ? `; task energy at the end ${task[task.length - 1].toFixed(3)}` : "");
  return el("div", { class: "energy" }, svg, el("div", { class: "believed", text: caption }));
}

// ---- wiring -----------------------------------------------------------------------------------------------------
function route() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (id) openThread(id);
  else { state.thread = null; $("#messages").replaceChildren(emptyNote()); }
}

$("#composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("#input").value;
  $("#input").value = "";
  send(text);
});
$("#input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
});
$("#new-thread").addEventListener("click", () => {
  const id = newThreadId();
  location.hash = id;
});
window.addEventListener("hashchange", route);
loadThreads().then(route);
