// /studio: Studio Chat. Each conversation picks its billing mode (B1):
// "subscription" draws on the plan's windows and may call the plan's
// models; "payg" bills the balance and may call every model. Answers
// stream over fetch + ReadableStream (SSE); each answer's cost is read
// from the request log by its x-zenmux-request-id. Conversations stay in
// this browser (localStorage).

import { $, h, replace, api, setCsrf, signOut, goSignIn, errorFrom, usd, flows, int, duration, title, toast } from "/assets/lib.js";

const STORE = "zx_studio_v1";
const MAX_CONVOS = 50;
const NON_CHAT = new Set(["image", "video", "embedding", "audio"]);

const state = { account: null, pricing: null, convos: [], current: "", busy: null, resetsAt: 0 };

// ---- storage ----

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || "{}");
    state.convos = Array.isArray(v.convos) ? v.convos : [];
    state.current = typeof v.current === "string" ? v.current : "";
  } catch {
    state.convos = [];
  }
}

function save() {
  state.convos.sort((a, b) => b.updated - a.updated);
  state.convos = state.convos.slice(0, MAX_CONVOS);
  try {
    localStorage.setItem(STORE, JSON.stringify({ convos: state.convos, current: state.current }));
  } catch {
    toast("This browser refused to save the conversation (storage full?)");
  }
}

function current() {
  return state.convos.find((c) => c.id === state.current);
}

function newConvo() {
  const prev = current();
  const c = {
    id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`,
    title: "New conversation",
    billing: prev ? prev.billing : "subscription",
    model: prev ? prev.model : "",
    messages: [],
    updated: Date.now(),
  };
  state.convos.unshift(c);
  state.current = c.id;
  save();
  return c;
}

// ---- models ----

// modelsFor lists the chat models a conversation of that billing may
// pick, those this gateway can serve now first (the rest would answer
// model_unavailable).
function modelsFor(billing) {
  const all = (state.pricing.models || []).filter((m) => !NON_CHAT.has(m.modality));
  const plan = state.account ? state.account.plan : "";
  const allowed = billing === "payg" ? all : all.filter((m) => (m.plans || []).includes(plan));
  return allowed.filter((m) => m.available !== false).concat(allowed.filter((m) => m.available === false));
}

function renderModels(c) {
  const list = modelsFor(c.billing);
  const sel = $("model");
  replace(sel, list.map((m) => h("option", {
    value: m.id,
    text: (m.name && m.name !== m.id ? `${m.name} — ${m.id}` : m.id) + (m.available === false ? " (not served on this gateway)" : ""),
  })));
  if (!list.some((m) => m.id === c.model)) c.model = list.length ? list[0].id : "";
  sel.value = c.model;
  sel.disabled = !list.length;
  if (!list.length) sel.append(h("option", { value: "", text: "No model available on this billing mode" }));
}

// ---- rendering ----

function renderList() {
  const ul = $("convo-list");
  replace(ul, state.convos.map((c) => {
    const b = h("button", { type: "button", "aria-current": c.id === state.current ? "true" : "false" },
      h("span", { text: c.title }),
      h("span", { class: "sub", text: `${c.model || "—"} · ${title(c.billing)}` }));
    b.addEventListener("click", () => {
      if (state.busy) return;
      state.current = c.id;
      save();
      render();
    });
    return h("li", {}, b);
  }));
}

function messageEl(m) {
  const meta = h("div", { class: "meta", text: m.meta || "" });
  const bubble = h("div", { class: "bubble", text: m.content });
  const el = h("div", { class: `msg ${m.role}${m.error ? " error" : ""}` }, bubble, meta);
  el._bubble = bubble;
  el._meta = meta;
  return el;
}

function renderMessages(c) {
  const box = $("messages");
  if (!c.messages.length) {
    replace(box, h("div", { class: "chat-empty" },
      h("h2", { text: "Start a conversation" }),
      h("p", { text: c.billing === "payg"
        ? "This conversation bills your pay-as-you-go balance at each model's API price."
        : "This conversation uses your subscription's Flows, shared with your API keys." })));
    return;
  }
  replace(box, c.messages.map(messageEl));
  box.scrollTop = box.scrollHeight;
}

function render() {
  let c = current();
  if (!c) c = state.convos[0] || newConvo();
  state.current = c.id;
  $("billing").value = c.billing;
  renderModels(c);
  renderList();
  renderMessages(c);
}

// ---- meters ----

function tickMeter() {
  if (!state.resetsAt || !state.windowText) return;
  const left = Math.ceil((state.resetsAt - Date.now()) / 1000);
  $("meter-window").textContent = `${state.windowText} · resets in ${duration(Math.max(0, left))}`;
}

async function refreshMeters() {
  const [u, a] = await Promise.all([api("GET", "/api/v1/me/usage"), api("GET", "/api/v1/me")]);
  setCsrf(a.csrf_token);
  state.account = a;
  const w = u.window_5h;
  state.windowText = `5-hour window: ${flows(w.remaining_flows)} of ${flows(w.limit_flows)} Flows left`;
  state.resetsAt = w.resets_at ? new Date(w.resets_at).getTime() : 0;
  $("meter-window").textContent = state.windowText;
  tickMeter();
  $("meter-balance").textContent = `Balance: ${usd(a.balance_usd)}`;
}

// ---- sending ----

// readSSE calls onEvent with each parsed data payload of an SSE body.
async function readSSE(res, onEvent) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      let ev;
      try {
        ev = JSON.parse(data);
      } catch {
        continue; // A line that is not JSON carries nothing to show.
      }
      onEvent(ev);
    }
  }
}

// costOf finds the answer's line in the request log: the ledger's own
// Flows or USD for it. The charge is committed before the stream's last
// event, so a short retry covers only a slow read.
async function costOf(requestID, billing) {
  if (!requestID) return "";
  for (let i = 0; i < 3; i++) {
    try {
      const page = await api("GET", "/api/v1/me/requests?limit=20");
      const r = (page.data || []).find((x) => x.id === requestID);
      if (r) return billing === "payg" || r.billing === "payg" ? `${usd(r.usd_value, { precise: true })} from your balance` : `${flows(r.flows)} Flows`;
    } catch {
      return "";
    }
    await new Promise((res) => setTimeout(res, 600));
  }
  return "";
}

async function send(text) {
  const c = current();
  if (!c || !c.model) {
    toast("Pick a model first");
    return;
  }
  c.messages.push({ role: "user", content: text });
  if (c.title === "New conversation") c.title = text.slice(0, 60);
  c.updated = Date.now();
  const answer = { role: "assistant", content: "", meta: "…" };
  c.messages.push(answer);
  save();
  renderList();
  renderMessages(c);
  const box = $("messages");
  const el = box.lastElementChild;
  const ctrl = new AbortController();
  state.busy = ctrl;
  setSending(true);
  const history = c.messages.filter((m) => !m.error && m !== answer).map((m) => ({ role: m.role, content: m.content }));
  let usage = null;
  try {
    const res = await api("POST", "/api/v1/me/studio/chat/completions",
      { model: c.model, messages: history, stream: true, billing: c.billing }, { raw: true, signal: ctrl.signal });
    if (res.status === 401) {
      goSignIn();
      return;
    }
    if (!res.ok) {
      let data = null;
      try {
        data = await res.json();
      } catch {
        data = null;
      }
      throw errorFrom(res, data);
    }
    const requestID = res.headers.get("x-zenmux-request-id") || "";
    await readSSE(res, (ev) => {
      if (ev.error) throw errorFrom({ status: 502, headers: new Headers() }, ev);
      const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
      if (delta && typeof delta.content === "string") {
        answer.content += delta.content;
        el._bubble.textContent = answer.content;
        box.scrollTop = box.scrollHeight;
      }
      if (ev.usage) usage = ev.usage;
    });
    const tokens = usage ? `${int(usage.prompt_tokens)} in · ${int(usage.completion_tokens)} out` : "";
    answer.meta = [c.model, title(c.billing), tokens].filter(Boolean).join(" · ");
    el._meta.textContent = answer.meta;
    const cost = await costOf(requestID, c.billing);
    if (cost) answer.meta += ` · ${cost}`;
  } catch (e) {
    if (e.name === "AbortError") {
      answer.meta = "Stopped";
    } else {
      answer.error = true;
      if (!answer.content) answer.content = e.message;
      answer.meta = answer.content === e.message ? "Not sent" : `Cut off: ${e.message}`;
    }
  } finally {
    state.busy = null;
    setSending(false);
    c.updated = Date.now();
    save();
    renderList();
    renderMessages(c);
    refreshMeters().catch(() => {});
  }
}

function setSending(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("model").disabled = on;
  $("billing").disabled = on;
  $("new-convo").disabled = on;
  $("delete-convo").disabled = on;
}

function wire() {
  $("sign-out").addEventListener("click", signOut);
  $("new-convo").addEventListener("click", () => {
    newConvo();
    render();
    $("prompt").focus({ preventScroll: true });
  });
  $("delete-convo").addEventListener("click", () => {
    const c = current();
    if (!c) return;
    if (c.messages.length && !window.confirm("Delete this conversation from this browser?")) return;
    state.convos = state.convos.filter((x) => x.id !== c.id);
    state.current = state.convos.length ? state.convos[0].id : "";
    save();
    render();
  });
  $("billing").addEventListener("change", () => {
    const c = current();
    c.billing = $("billing").value;
    renderModels(c);
    save();
    renderList();
    renderMessages(c);
  });
  $("model").addEventListener("change", () => {
    const c = current();
    c.model = $("model").value;
    save();
    renderList();
  });
  $("stop").addEventListener("click", () => state.busy && state.busy.abort());
  const prompt = $("prompt");
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.busy) return;
    prompt.value = "";
    send(text);
  });
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
}

async function main() {
  wire();
  load();
  try {
    const [pricing] = await Promise.all([api("GET", "/api/v1/pricing", undefined, { redirectOn401: false }), refreshMeters()]);
    state.pricing = pricing;
  } catch (e) {
    if (e.status === 401) return;
    const el = $("load-error");
    el.textContent = `Studio could not load: ${e.message}`;
    el.hidden = false;
    return;
  }
  render();
  setInterval(tickMeter, 1000);
  $("prompt").focus({ preventScroll: true });
}

main();
