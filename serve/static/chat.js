// The chat page: streams answers from /v1/chat/completions (SSE over fetch), shows numbered
// citations that open the cited passage, keeps the conversation, and sends the API key the user
// entered once (kept in localStorage). No build step, no dependencies.
"use strict";

const KEY_STORAGE = "rag.apiKey";
const CONVERSATION_STORAGE = "rag.conversation";
const MARKERS = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;

const $ = (id) => document.getElementById(id);
const ui = {
  messages: $("messages"), empty: $("empty"), form: $("ask"), question: $("question"),
  send: $("send"), stop: $("stop"), model: $("model"), newChat: $("new-chat"), setKey: $("set-key"),
  passage: $("passage"), passageMarker: $("passage-marker"), passageTitle: $("passage-title"),
  passageSource: $("passage-source"), passageWhere: $("passage-where"), passageText: $("passage-text"),
  passageClose: $("passage-close"), keyDialog: $("key-dialog"), keyInput: $("key-input"),
  keyReason: $("key-reason"), keyCancel: $("key-cancel"),
};

// Each turn: {role: "user"|"assistant", content, sources?: [...], warnings?: [...], error?: bool,
// meta?: string}.
let turns = loadTurns();
let inFlight = null;

function loadTurns() {
  try {
    const saved = JSON.parse(localStorage.getItem(CONVERSATION_STORAGE) || "[]");
    return Array.isArray(saved) ? saved : [];
  } catch {
    return [];
  }
}

function saveTurns() {
  localStorage.setItem(CONVERSATION_STORAGE, JSON.stringify(turns));
}

// -- the API key ------------------------------------------------------------------------------

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

function askForKey(reason) {
  ui.keyReason.textContent = reason;
  ui.keyInput.value = apiKey();
  return new Promise((resolve) => {
    ui.keyDialog.addEventListener("close", () => {
      const saved = ui.keyDialog.returnValue === "save" && ui.keyInput.value.trim() !== "";
      if (saved) localStorage.setItem(KEY_STORAGE, ui.keyInput.value.trim());
      resolve(saved);
    }, { once: true });
    ui.keyDialog.returnValue = "";  // Escape leaves it as it was: start from "not saved"
    ui.keyDialog.showModal();
    ui.keyInput.focus();
  });
}

// fetch with the key; a 401 asks for a (new) key once and retries.
async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...(options.headers || {}) };
    if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401 || attempt > 0) return response;
    const reason = apiKey() ? "The server refused the saved API key. Enter a valid one."
                            : "This server asks for an API key.";
    if (!(await askForKey(reason))) return response;
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

// -- rendering --------------------------------------------------------------------------------

function citeButton(marker, sources) {
  const source = sources && sources.find((s) => s.marker === marker);
  if (sources && !source) {
    const span = document.createElement("span");
    span.className = "cite-missing";
    span.title = "This marker points at no passage";
    span.textContent = `[${marker}]`;
    return span;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "cite";
  button.dataset.marker = String(marker);
  button.textContent = `[${marker}]`;
  button.title = source ? `${source.title || source.doc_id}` : "Cited passage";
  return button;
}

// Text with [n] markers turned into buttons; built from text nodes, never innerHTML.
function renderText(element, text, sources) {
  element.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(MARKERS)) {
    element.append(text.slice(last, match.index));
    const numbers = match[1].split(/[,;]/).map((n) => parseInt(n.trim(), 10));
    numbers.forEach((n) => element.append(citeButton(n, sources)));
    last = match.index + match[0].length;
  }
  element.append(text.slice(last));
}

function renderSources(item, sources) {
  item.querySelector(".sources")?.remove();
  if (!sources || sources.length === 0) return;
  const list = document.createElement("ul");
  list.className = "sources";
  list.setAttribute("aria-label", "Sources");
  for (const source of sources) {
    const entry = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.marker = String(source.marker);
    const marker = document.createElement("span");
    marker.className = "marker";
    marker.textContent = `[${source.marker}]`;
    button.append(marker, source.title || source.doc_id);
    // Matched by the answer quoting the passage, not cited by the model.
    if (source.inferred) button.append(" (quoted)");
    button.title = source.source || source.doc_id;
    entry.append(button);
    list.append(entry);
  }
  const meta = item.querySelector(".meta");
  if (meta) meta.before(list);
  else item.append(list);
}

function renderTurn(turn) {
  const item = document.createElement("li");
  item.className = `msg ${turn.role}${turn.error ? " error" : ""}`;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = turn.role === "user" ? "You" : "Answer";
  const text = document.createElement("div");
  text.className = "text";
  item.append(who, text);
  if (turn.role === "assistant" && !turn.error) {
    renderText(text, turn.content, turn.sources);
    renderSources(item, turn.sources);
  } else {
    text.textContent = turn.content;
  }
  for (const warning of turn.warnings || []) {
    const note = document.createElement("div");
    note.className = "warning";
    note.textContent = `Warning: ${warning}`;
    item.append(note);
  }
  if (turn.meta) {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = turn.meta;
    item.append(meta);
  }
  item.turn = turn;
  ui.messages.append(item);
  ui.empty.hidden = true;
  return item;
}

function renderAll() {
  ui.messages.replaceChildren();
  ui.empty.hidden = turns.length > 0;
  turns.forEach(renderTurn);
}

function showPassage(turn, marker) {
  const source = (turn.sources || []).find((s) => s.marker === marker);
  ui.passageMarker.textContent = `[${marker}]`;
  if (!source) {
    ui.passageTitle.textContent = "Passage not available";
    ui.passageSource.textContent = "";
    ui.passageWhere.textContent = "";
    ui.passageText.textContent = turn === inFlight?.turn
      ? "The sources arrive when the answer is complete."
      : "The answer cites a passage the server did not return.";
  } else {
    ui.passageTitle.textContent = source.title || source.doc_id;
    ui.passageSource.textContent = source.source || source.doc_id;
    const where = [];
    if (source.heading_path && source.heading_path.length) where.push(source.heading_path.join(" › "));
    if (source.page != null) where.push(`page ${source.page}`);
    ui.passageWhere.textContent = where.join(" · ");
    ui.passageText.textContent = source.text;
  }
  ui.passage.hidden = false;
}

function scrollToEnd() {
  window.scrollTo({ top: document.body.scrollHeight });
}

// -- asking -----------------------------------------------------------------------------------

function parseEvents(buffer, onEvent) {
  let boundary;
  while ((boundary = buffer.search(/\r?\n\r?\n/)) >= 0) {
    const block = buffer.slice(0, boundary);
    buffer = buffer.slice(boundary).replace(/^\r?\n\r?\n/, "");
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
    if (data) onEvent(data);
  }
  return buffer;
}

async function ask(question) {
  const user = { role: "user", content: question };
  turns.push(user);
  renderTurn(user);
  const turn = { role: "assistant", content: "", sources: null };
  const item = renderTurn(turn);
  const text = item.querySelector(".text");
  item.classList.add("streaming");
  const controller = new AbortController();
  inFlight = { turn, controller };
  setBusy(true);
  scrollToEnd();
  const started = performance.now();
  let firstToken = null;
  let variant = null;
  try {
    const history = turns.filter((t) => !t.error && t !== turn).map(({ role, content }) => ({ role, content }));
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ model: ui.model.value, messages: history, stream: true }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), (data) => {
        if (data === "[DONE]") { done = true; return; }
        const event = JSON.parse(data);
        if (event.error) throw new Error(event.error.message);
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) {
          if (firstToken === null) firstToken = performance.now() - started;
          turn.content += delta.content;
          renderText(text, turn.content, null);
          scrollToEnd();
        }
        if (event.sources) turn.sources = event.sources;
        if (event.warnings) turn.warnings = event.warnings;
        if (event.variant) variant = event.variant;
      });
    }
    turn.sources = turn.sources || [];
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    turn.meta = `${variant ? describeVariant(variant) : ui.model.value} · ${seconds} s` +
      (firstToken !== null ? ` · first words after ${(firstToken / 1000).toFixed(1)} s` : "");
  } catch (error) {
    if (error.name === "AbortError") {
      turn.meta = "stopped";
      turn.sources = turn.sources || [];
    } else {
      turn.error = true;
      turn.content = `Error: ${error.message}`;
    }
  } finally {
    inFlight = null;
    setBusy(false);
    turns.push(turn);
    saveTurns();
    item.replaceWith(renderTurn(turn));
    scrollToEnd();
  }
}

// What the answer ran with, as the server reports it: "rag-few-shot (k=3, 2 shots)".
function describeVariant(v) {
  const parts = [v.retrieval ? `k=${v.k}` : "no retrieval", `${v.shots} shot${v.shots === 1 ? "" : "s"}`];
  if (v.adapter) parts.push("LoRA");
  return `${v.name} (${parts.join(", ")})`;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.hidden = !busy;
}

// -- wiring -----------------------------------------------------------------------------------

async function loadModels() {
  const response = await api("/v1/models");
  if (!response.ok) return;
  const body = await response.json();
  const current = ui.model.value;
  ui.model.replaceChildren(...body.data.map((m) => {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.id;
    option.title = m.description || "";
    return option;
  }));
  if (body.data.some((m) => m.id === current)) ui.model.value = current;
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = ui.question.value.trim();
  if (!question || inFlight) return;
  ui.question.value = "";
  ask(question);
});

ui.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => inFlight && inFlight.controller.abort());

ui.messages.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-marker]");
  if (!button) return;
  const item = button.closest(".msg");
  const turn = item.turn || (inFlight && inFlight.turn);
  if (turn) showPassage(turn, parseInt(button.dataset.marker, 10));
});

ui.passageClose.addEventListener("click", () => { ui.passage.hidden = true; });
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !ui.keyDialog.open) ui.passage.hidden = true;
});

ui.newChat.addEventListener("click", () => {
  if (inFlight) inFlight.controller.abort();
  turns = [];
  saveTurns();
  ui.passage.hidden = true;
  renderAll();
  ui.question.focus();
});

ui.keyCancel.addEventListener("click", () => ui.keyDialog.close("cancel"));

ui.setKey.addEventListener("click", async () => {
  if (await askForKey("Enter the API key for this server.")) loadModels();
});

renderAll();
loadModels();
