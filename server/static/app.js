// outcore /ui: the runs list and one run's call tree, updated live from /v1/runs/{id}/events (SSE).
// Plain JS, no build step, no CDN. With an API key, open /ui?api_key=KEY once: the server exchanges the key for a
// short-lived HttpOnly cookie and redirects to /ui without it; fetches and the EventSource then carry the cookie.
"use strict";

const params = new URLSearchParams(location.search);
const KINDS = {
  run_start: "run", run_end: "run",
  root_turn_start: "turn", root_turn: "turn",
  cell_start: "cell", cell: "cell",
  subcall_start: "sub", subcall_end: "sub",
  // the plan: one line each (engine/strategy, engine/operators; docs/plans.md "In the trace")
  planned_step: "step", operator: "step", task_found: "step",
  answer_refused: "step", answer_resent: "step", answer_in_hand: "step", cell_resent: "step",
};
const STEP_TEXT = {
  planned_step: () => "first step (run by the engine)",
  operator: (e) => `${e.name}(${e.args || ""}) → ${e.n_out}${e.refused ? " · refused: " + e.refused : ""}`,
  task_found: (e) => `task found in the prompt (${e.where}): ${e.question}`,
  answer_refused: (e) => `FINAL(${e.answer}) refused: ${e.reason}`,
  answer_resent: (e) => `answer in hand, cell re-sent: ${e.answer}`,
  answer_in_hand: (e) => `answer in hand at ${e.stop}: ${e.answer}`,
  cell_resent: () => "the same cell re-sent: not run again",
};
const ENDS = new Set(["run_end", "root_turn", "cell", "subcall_end"]);

let selected = params.get("run") || null;
let source = null;
let nodes = new Map();
let roots = [];
let runInfo = null;
const openState = new Map(); // "nodeId:section" -> bool, kept across re-renders
let renderQueued = false;

function api(path, opts = {}) {
  return fetch(path, Object.assign({ credentials: "same-origin" }, opts));
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmtS(x) { return x === undefined || x === null ? "" : `${Number(x).toFixed(2)} s`; }
function fmtN(x) { return (x || 0).toLocaleString(); }
function short(s, n = 120) { s = String(s || ""); return s.length > n ? s.slice(0, n) + "…" : s; }

// ------------------------------------------------------------------------------------------------ runs list
async function refreshRuns() {
  try {
    const r = await api("/v1/runs?limit=100");
    if (!r.ok) return;
    const data = (await r.json()).data;
    const ul = document.getElementById("runs");
    ul.replaceChildren(...data.map(runItem));
    document.getElementById("runs-empty").hidden = data.length > 0;
    if (!selected && data.length) select(data[0].id);
    const cur = data.find((d) => d.id === selected);
    if (cur) { runInfo = Object.assign(runInfo || {}, cur); drawHead(); }
  } catch (e) { /* server restarting: try again later */ }
}

function runItem(run) {
  const c = run.counts || {};
  return el("li", { class: run.id === selected ? "selected" : "", "data-run": run.id, onclick: () => select(run.id) },
    el("div", { class: "q", text: run.question || "(no question)" }),
    el("div", { class: "meta" },
      el("span", { class: `badge ${run.status}`, text: run.status }), " ",
      `${run.model} · ${fmtS(run.elapsed_s)} · turns ${c.root_turns || 0} · cells ${c.cells || 0} · sub-calls ${c.sub_calls || 0}`));
}

async function refreshHealth() {
  const h = document.getElementById("health");
  try {
    const r = await fetch("/health");
    h.textContent = r.ok ? "ready" : (await r.json()).error.message;
    h.className = "badge " + (r.ok ? "ok" : "running");
  } catch (e) { h.textContent = "down"; h.className = "badge down"; }
}

// ------------------------------------------------------------------------------------------------ one run
function select(id) {
  selected = id;
  document.querySelectorAll("#runs li").forEach((li) => li.classList.toggle("selected", li.dataset.run === id));
  const u = new URL(location.href); u.searchParams.set("run", id); history.replaceState(null, "", u);
  if (source) source.close();
  nodes = new Map(); roots = []; runInfo = { id };
  document.getElementById("run-empty").hidden = true;
  document.getElementById("run").hidden = false;
  api(`/v1/runs/${id}?events=false`).then((r) => r.ok ? r.json() : null).then((d) => {
    if (d) { runInfo = Object.assign(runInfo, d); drawHead(); }
  });
  const url = `/v1/runs/${id}/events`;
  source = new EventSource(url);
  source.onmessage = (m) => { apply(JSON.parse(m.data)); };
  source.addEventListener("end", (m) => {
    source.close(); source = null;
    api(`/v1/runs/${id}?events=false`).then((r) => r.json()).then((d) => { runInfo = Object.assign(runInfo, d); drawHead(); });
  });
  drawHead(); scheduleRender();
}

function apply(ev) {
  if (ev.event === "status") { runInfo.status = ev.status; drawHead(); return; }
  if (ev.event === "strategy" && nodes.get(ev.id)) { nodes.get(ev.id).strategy = ev.mode; scheduleRender(); return; }
  const kind = KINDS[ev.event];
  if (!kind || !ev.id) return;
  if (kind === "step" && ev.event === "task_found") ev = { ...ev, id: `task-${ev.id}` };  // carries its run's id
  let n = nodes.get(ev.id);
  if (!n) {
    n = { id: ev.id, kind, parent: ev.parent, depth: ev.depth, start: {}, end: null, children: [] };
    nodes.set(ev.id, n);
    const p = ev.parent && nodes.get(ev.parent);
    if (p) p.children.push(n); else roots.push(n);
  }
  if (ENDS.has(ev.event)) n.end = ev; else n.start = ev;
  if (kind === "step") n.end = ev;  // a step is one event: done when it arrives
  if (ev.event === "run_end" && ev.parent === null && ev.id === selected) {
    runInfo.answer = ev.answer; runInfo.finish_reason = ev.finish_reason; runInfo.partial = ev.partial;
  }
  scheduleRender();
}

function drawHead() {
  const r = runInfo || {};
  document.getElementById("run-title").textContent = r.id || "";
  const st = document.getElementById("run-status");
  st.textContent = r.status || "…"; st.className = "badge " + (r.status || "");
  const active = r.status === "running" || r.status === "queued";
  const btn = document.getElementById("cancel");
  btn.disabled = !active;
  const c = r.counts || {};
  const stats = [
    `model ${r.model || "?"}`, `elapsed ${fmtS(r.elapsed_s)}`, `root turns ${c.root_turns || 0}`,
    `cells ${c.cells || 0}`, `sub-calls ${c.sub_calls || 0}`, `tokens ${fmtN(c.tokens)}`,
    `cached ${fmtN(c.cached_tokens)}`,
  ];
  if (r.finish_reason) stats.push(`finish ${r.finish_reason}`);
  document.getElementById("run-stats").replaceChildren(...stats.map((s) => el("span", { text: s })));
  document.getElementById("run-question").textContent = r.question || "";
  const ans = document.getElementById("run-answer");
  if (r.answer !== undefined && r.answer !== null && !active) {
    ans.hidden = false; ans.textContent = r.answer || "(empty answer)";
    ans.className = "answer" + (r.partial ? " partial" : "");
  } else { ans.hidden = true; }
}

document.getElementById("cancel").addEventListener("click", async () => {
  if (!selected) return;
  document.getElementById("cancel").disabled = true;
  await api(`/v1/runs/${selected}/cancel`, { method: "POST" });
});

// ------------------------------------------------------------------------------------------------ the tree
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; render(); }, 80);
}

function render() {
  const tree = document.getElementById("tree");
  tree.replaceChildren(...roots.map(drawNode));
}

const OPEN_BY_DEFAULT = new Set(["code", "out"]); // a cell's code and output; replies and prompts start folded

function section(node, name, label, content, cls) {
  const key = `${node.id}:${name}`;
  const open = openState.has(key) ? openState.get(key) : OPEN_BY_DEFAULT.has(name);
  const d = el("details", { open: open ? true : null },
    el("summary", { text: label }), el("pre", { class: cls || "", text: content }));
  d.addEventListener("toggle", () => openState.set(key, d.open));
  return d;
}

function tokens(f) {
  if (!f) return "";
  const parts = [];
  if (f.prompt_tokens !== undefined) parts.push(`${fmtN(f.prompt_tokens)} in`);
  if (f.completion_tokens !== undefined) parts.push(`${fmtN(f.completion_tokens)} out`);
  if (f.cached_tokens) parts.push(`${fmtN(f.cached_tokens)} cached`);
  return parts.join(" · ");
}

function drawNode(n) {
  const s = n.start || {}, e = n.end || {};
  const live = !n.end;
  const failed = Boolean(e.error) || Boolean(s.refused) || s.event === "answer_refused" || (n.kind === "run" && e.finish_reason && !["final", "direct"].includes(e.finish_reason));
  const head = el("div", { class: "head" });
  const body = [];
  if (n.kind === "run") {
    head.append(el("span", { class: "kind", text: n.depth ? `child RLM (depth ${n.depth})` : "RLM run" }),
      el("span", { class: "info", text: [s.root && `root ${s.root}`, s.worker && `worker ${s.worker}`,
        n.strategy && `strategy ${n.strategy}`,
        e.elapsed_s !== undefined && fmtS(e.elapsed_s), e.finish_reason && `→ ${e.finish_reason}`].filter(Boolean).join(" · ") }));
    if (s.question && n.depth) body.push(el("div", { class: "info", text: `question: ${short(s.question, 200)}` }));
    if (e.answer !== undefined && n.depth) body.push(el("div", { class: "info", text: `answer: ${short(e.answer, 300)}` }));
  } else if (n.kind === "turn") {
    const turn = e.turn !== undefined ? e.turn : s.turn;
    head.append(el("span", { class: "kind", text: `root turn ${turn !== undefined ? turn : ""}` }),
      el("span", { class: "info", text: [e.model || s.model, e.latency_s !== undefined && fmtS(e.latency_s), tokens(e)]
        .filter(Boolean).join(" · ") }));
    if (e.text) body.push(section(n, "text", "reply", e.text));
  } else if (n.kind === "step") {
    head.append(el("span", { class: "kind", text: s.event === "operator" ? "operator" : "plan" }),
      el("span", { class: "info", text: short(STEP_TEXT[s.event](s), 400) }));
    if (s.event === "planned_step" && s.code) body.push(section(n, "code", "code", s.code, "code"));
  } else if (n.kind === "cell") {
    const dur = e.duration_s !== undefined ? fmtS(e.duration_s) : "";
    head.append(el("span", { class: "kind", text: "cell" }),
      el("span", { class: "info", text: [dur, e.sub_calls !== undefined && `${e.sub_calls} sub-calls`,
        e.limit && `limit ${e.limit}`, e.final && "FINAL"].filter(Boolean).join(" · ") }));
    const code = e.code || s.code;
    if (code) body.push(section(n, "code", "code", code, "code"));
    if (e.output !== undefined) body.push(section(n, "out", e.error ? `output (error: ${short(e.error, 80)})` : "output", e.output, e.error ? "err" : ""));
  } else {
    const kind = e.kind || s.kind || "sub-call";
    const label = kind === "llm" ? "llm_query" : kind === "batch" ? `llm_query_batched ×${s.n || e.n || "?"}` : kind === "rlm" ? "rlm_query" : kind;
    head.append(el("span", { class: "kind", text: label }),
      el("span", { class: "info", text: [s.model || e.model, e.latency_s !== undefined && fmtS(e.latency_s), tokens(e)]
        .filter(Boolean).join(" · ") }));
    if (s.prompt_preview) body.push(section(n, "prompt", "prompt", s.prompt_preview));
    if (e.result_preview) body.push(section(n, "result", "result", e.result_preview));
    if (e.error) body.push(el("pre", { class: "err", text: e.error }));
  }
  const kids = n.children.length ? el("div", { class: "children" }, ...n.children.map(drawNode)) : null;
  return el("div", { class: `node${live ? " live" : ""}${failed ? " error" : ""}`, "data-kind": n.kind, "data-id": n.id },
    head, ...body, kids);
}

refreshHealth(); refreshRuns();
if (selected) select(selected);
setInterval(refreshRuns, 1500);
setInterval(refreshHealth, 5000);
