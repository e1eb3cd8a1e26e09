// The ossy chat page. Talks only to the server that served it: /api/tags and /api/show (Ollama's
// API), /api/agent (a user turn run to its answer, tools included, streamed as NDJSON events),
// /api/agent/approvals/{id} (the user's answer to an approval card) and /api/experts (routing
// counts). Conversations are kept in this browser's localStorage, as the messages /api/agent
// returns (OpenAI-style: user, assistant with thinking and tool_calls, tool), and are rendered
// from them. Markdown goes through marked, then DOMPurify: nothing the model writes runs.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "ossy.conversations", PREFS = "ossy.page";
const state = { conversations: readJSON(STORE, []), current: null, controller: null, prefs: readJSON(PREFS, {}) };

function readJSON(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}
function saveConversations() {
  try { localStorage.setItem(STORE, JSON.stringify(state.conversations)); }
  catch (error) { status(`Could not keep the conversations in this browser: ${error.message}. Delete some.`, true); }
}
function savePrefs() { localStorage.setItem(PREFS, JSON.stringify(state.prefs)); }

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function markdown(text) { return DOMPurify.sanitize(marked.parse(text)); }

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { const error = (await response.json()).error; message = error.message || error; } catch {}
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

// ---- settings ------------------------------------------------------------------------------------
async function loadModels() {
  const select = $("model");
  const { models } = await api("/api/tags");
  select.replaceChildren(...models.map((m) => el("option", { value: m.name }, m.name)));
  if (models.some((m) => m.name === state.prefs.model)) select.value = state.prefs.model;
  if (!models.length) status("No models yet: run `ossy pull nano` in a terminal.", true);
}

async function loadToolsets() {
  const { toolsets } = await api("/api/agent/toolsets");
  const enabled = new Set(state.prefs.toolsets || []);
  for (const t of toolsets) {
    const box = el("input", { type: "checkbox", value: t.name, id: `toolset-${t.name}` });
    box.checked = enabled.has(t.name);
    box.addEventListener("change", () => { state.prefs.toolsets = checkedToolsets(); savePrefs(); });
    $("toolsets").append(el("label", { for: box.id, title: t.tools.join(", ") }, box, ` ${t.name}`));
  }
}

function checkedToolsets() {
  return [...$("toolsets").querySelectorAll("input:checked")].map((box) => box.value);
}

// ---- conversations -------------------------------------------------------------------------------
function renderSidebar() {
  const list = $("conversations");
  list.replaceChildren(...state.conversations.map((c) => el("li", { class: c === state.current ? "current" : "" },
    el("button", { class: "open", type: "button", onclick: () => openConversation(c) }, c.title || "New chat"),
    el("button", { class: "delete", type: "button", "aria-label": `Delete ${c.title}`, onclick: () => deleteConversation(c) }, "×"))));
}

function newConversation() {
  stop();
  state.current = null;
  $("messages").replaceChildren();
  renderSidebar();
  $("prompt").focus();
}

function openConversation(conversation) {
  stop();
  state.current = conversation;
  renderMessages(conversation.messages);
  renderSidebar();
  $("sidebar").classList.remove("open");
}

function deleteConversation(conversation) {
  state.conversations = state.conversations.filter((c) => c !== conversation);
  saveConversations();
  if (state.current === conversation) newConversation(); else renderSidebar();
}

// ---- rendering -----------------------------------------------------------------------------------
function userView(text) {
  return el("div", { class: "message user" }, el("div", { class: "role" }, "You"), el("div", { class: "body" }, text));
}

class AssistantView {
  constructor(model) {
    this.node = el("div", { class: "message assistant" }, el("div", { class: "role" }, model));
    this.cards = new Map();
    $("messages").append(this.node);
  }
  reply() {  // a new model reply within this turn (after tool results)
    this.thinking = null; this.content = null; this.text = ""; this.reasoning = "";
  }
  addThinking(text) {
    if (!this.thinking) {
      this.thinking = el("div");
      this.node.append(el("details", { class: "reasoning" }, el("summary", {}, "Reasoning"), this.thinking));
    }
    this.reasoning += text;
    this.thinking.textContent = this.reasoning;
  }
  addContent(text) {
    if (!this.content) { this.content = el("div", { class: "content" }); this.node.append(this.content); }
    this.text += text;
    if (!this.pending) {
      this.pending = requestAnimationFrame(() => { this.pending = null; this.content.innerHTML = markdown(this.text); scrollDown(); });
    }
  }
  toolCall(id, name, args) {
    const card = el("div", { class: "card tool", "data-call": id },
      el("div", { class: "title" }, `Tool call: ${name}`), el("pre", { class: "arguments" }, args),
      el("div", { class: "result" }, "running…"));
    this.cards.set(id, card);
    this.node.append(card);
  }
  toolResult(id, result) {
    const card = this.cards.get(id);
    if (!card) return;
    const output = result.error ? `${result.error}\n${result.output || ""}`.trim() : result.output;
    card.querySelector(".result").replaceChildren(
      el("span", { class: `status-${result.status}` }, result.status), el("pre", { class: "output" }, output || ""));
  }
  approval(event) {
    const card = el("div", { class: "card approval", role: "group", "aria-label": `Approve ${event.tool}` },
      el("div", { class: "title" }, `${event.tool} (${event.toolset}) wants to run`),
      el("pre", {}, JSON.stringify(event.arguments, null, 2)),
      el("div", {}, "It would:"), el("pre", { class: "preview" }, event.preview));
    const actions = el("div", { class: "actions" });
    const answer = async (word) => {
      actions.replaceChildren(el("span", {}, word === "no" ? "Denied" : "Approved"));
      try { await api(`/api/agent/approvals/${encodeURIComponent(event.id)}`, { answer: word }); }
      catch (error) { actions.replaceChildren(el("span", { class: "error" }, error.message)); }
    };
    actions.append(el("button", { type: "button", class: "allow", onclick: () => answer("yes") }, "Allow once"),
                   el("button", { type: "button", class: "always", onclick: () => answer("always") }, "Allow for this turn"),
                   el("button", { type: "button", class: "deny", onclick: () => answer("no") }, "Deny"));
    card.append(actions);
    this.node.append(card);
    actions.querySelector("button").focus();
  }
  experts(counts) {
    this.node.append(el("button", { type: "button", class: "experts-button",
      onclick: () => showPanel("Experts that fired for this answer", heatmap(counts)) }, "Experts for this answer"));
  }
}

function renderMessages(messages) {
  $("messages").replaceChildren();
  let view = null;
  for (const m of messages) {
    if (m.role === "user") { $("messages").append(userView(m.content)); view = null; }
    else if (m.role === "assistant") {
      view = view || new AssistantView(state.current?.model || "assistant");
      view.reply();
      if (m.thinking) view.addThinking(m.thinking);
      for (const call of m.tool_calls || []) view.toolCall(call.id, call.function.name, call.function.arguments);
      if (m.content) { view.addContent(m.content); view.content.innerHTML = markdown(view.text); }
    } else if (m.role === "tool" && view) {
      view.toolResult(m.tool_call_id, { status: "done", output: m.content });
    }
  }
  scrollDown();
}

function scrollDown() { const box = $("messages"); box.scrollTop = box.scrollHeight; }

// ---- a turn ---------------------------------------------------------------------------------------
async function send(text) {
  const model = $("model").value;
  if (!model) { status("Pick a model first.", true); return; }
  if (!state.current) {
    // not crypto.randomUUID: it needs a secure context, which http://192.168.x.x is not
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    state.current = { id, title: text.slice(0, 48), model, messages: [] };
    state.conversations.unshift(state.current);
  }
  const conversation = state.current;
  conversation.model = model;
  const messages = [...conversation.messages, { role: "user", content: text }];
  $("messages").append(userView(text));
  const view = new AssistantView(model);
  scrollDown();
  setBusy(true);
  state.controller = new AbortController();
  const started = performance.now();
  let done = null;
  try {
    const response = await fetch("/api/agent", {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: state.controller.signal,
      body: JSON.stringify({ model, messages, toolsets: checkedToolsets(), think: $("effort").value }) });
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    for await (const event of ndjson(response)) {
      if (event.type === "turn") view.reply();
      else if (event.type === "thinking") view.addThinking(event.text);
      else if (event.type === "content") view.addContent(event.text);
      else if (event.type === "tool_call") view.toolCall(event.id, event.name, event.arguments);
      else if (event.type === "tool_result") view.toolResult(event.id, event);
      else if (event.type === "approval") view.approval(event);
      else if (event.type === "error") throw new Error(event.error);
      else if (event.type === "done") done = event;
      scrollDown();
    }
    conversation.messages = done ? done.messages : messages;
    if (done?.experts) view.experts(done.experts);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const tokens = done?.stats?.eval_count;
    status(`${done?.stopped === "answer" ? "Done" : `Stopped: ${done?.stopped}`} in ${seconds} s` +
           (tokens ? `, ${tokens} tokens in the last reply` : ""));
  } catch (error) {
    if (error.name === "AbortError") {
      status("Stopped.");
      conversation.messages = [...messages, { role: "assistant", content: view.text || "" }];
    } else {
      view.node.append(el("p", { class: "error" }, error.message));
      status(error.message, true);
      conversation.messages = messages;
    }
  } finally {
    state.controller = null;
    setBusy(false);
    saveConversations();
    renderSidebar();
  }
}

async function* ndjson(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) yield JSON.parse(line);
    }
    if (done) return;
  }
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  if (busy) status("Generating… (Esc stops)");
}

function stop() { if (state.controller) state.controller.abort(); }

// ---- panels: model info, experts ------------------------------------------------------------------
function showPanel(title, body) {
  $("panel-title").textContent = title;
  $("panel-body").replaceChildren(body);
  $("panel").hidden = false;
  $("close-panel").focus();
}

function gib(bytes) { return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`; }

function rows(pairs) {
  return el("table", { class: "info" }, ...pairs.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, String(v)))));
}

async function showInfo() {
  const model = $("model").value;
  try {
    const info = await api("/api/show", { model, verbose: true });
    const d = info.details || {};
    const pairs = [["family", d.family], ["parameters", d.parameter_size], ["quantization", d.quantization_level],
                   ["format", d.format], ["capabilities", (info.capabilities || []).join(", ")]];
    for (const [key, value] of Object.entries(info.model_info || {})) {
      if (/context_length|embedding_length|block_count|expert_count|expert_used_count/.test(key)) pairs.push([key, value]);
    }
    if (info.parameters) pairs.push(["parameters (Modelfile)", info.parameters.trim().replace(/\s+/g, " ")]);
    if (info.toolsets) pairs.push(["tools (Modelfile)", info.toolsets.join(", ")]);
    const m = info.memory;
    if (m) {
      pairs.push(["memory (estimate)", `${gib(m.total)} in all: weights ${gib(m.weights)}, KV cache ${gib(m.kv_cache)} ` +
                  `(${m.slots} slots of ${m.num_ctx} tokens), buffers ${gib(m.compute)}, runtime ${gib(m.runtime)}`]);
    }
    if (info.compute) pairs.push(["runs on", info.compute.path]);
    if (info.license) pairs.push(["license", info.license.split("\n")[0]]);
    showPanel(`Model: ${model}`, rows(pairs.filter(([, v]) => v !== undefined && v !== "")));
  } catch (error) { status(error.message, true); }
}

function heatmap(data) {
  // data: {layers, experts, counts: [[n per expert] per layer], tokens}
  const max = Math.max(1, ...data.counts.flat());
  const head = el("tr", {}, el("th", {}, "layer \\ expert"), ...[...Array(data.experts).keys()].map((e) => el("th", {}, e)));
  const body = data.counts.map((row, layer) => el("tr", {}, el("th", {}, layer), ...row.map((n, expert) => {
    const cell = el("td", { title: `layer ${layer}, expert ${expert}: chosen for ${n} of ${data.tokens} tokens` }, "");
    cell.style.background = `rgba(36, 87, 197, ${(n / max).toFixed(3)})`;
    cell.setAttribute("data-count", n);
    return cell;
  })));
  return el("div", {}, el("p", {}, `Routing decisions over ${data.tokens} tokens (each token picks ${data.top_k} experts per layer); darker = chosen more often.`),
            el("table", { class: "heatmap" }, head, ...body));
}

async function showExperts() {
  const model = $("model").value;
  try { showPanel(`Expert routing: ${model} since it was loaded`, heatmap(await api(`/api/experts?model=${encodeURIComponent(model)}`))); }
  catch (error) { status(error.message, true); }
}

// ---- wiring ---------------------------------------------------------------------------------------
function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { if (state.controller) stop(); else $("panel").hidden = true; }
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", newConversation);
  $("show-info").addEventListener("click", showInfo);
  $("show-experts").addEventListener("click", showExperts);
  $("close-panel").addEventListener("click", () => { $("panel").hidden = true; });
  $("model").addEventListener("change", () => { state.prefs.model = $("model").value; savePrefs(); });
  $("effort").value = state.prefs.effort || "medium";
  $("effort").addEventListener("change", () => { state.prefs.effort = $("effort").value; savePrefs(); });
  $("toggle-sidebar").addEventListener("click", () => {
    const open = $("sidebar").classList.toggle("open");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  });
}

wire();
renderSidebar();
Promise.all([loadModels(), loadToolsets()]).catch((error) => status(error.message, true));
