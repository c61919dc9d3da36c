// Shared helpers for the pages: building DOM from data (text only, never
// HTML), calling the self-service API with the session cookie and the CSRF
// token, and formatting money, Flows and times.

// ApiError is a refused call: the HTTP status and the API's error code.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

// h builds an element. props: class, text, and plain attributes (never
// style or on* handlers: the CSP forbids them and text must stay text).
// Children are nodes or strings; strings become text nodes.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "style" || k.startsWith("on")) throw new Error(`h: ${k} is not allowed`);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// $ finds one element by id; a page missing an id it needs is a bug.
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

// replace empties el and appends the children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let csrfToken = "";

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

// setCsrf remembers the token GET /api/v1/me or sign-in answered.
export function setCsrf(token) {
  if (token) csrfToken = token;
}

// hasSessionHint tells whether the page's origin has set the CSRF cookie:
// a hint that a session may exist, not a proof (the API decides).
export function hasSessionHint() {
  return cookie("zx_csrf") !== "";
}

// api calls the self-service API: same-origin credentials, the CSRF token
// on every state-changing call, JSON in and out. A 401 on a page that
// needs a session sends the browser to /sign-in.
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRF-Token"] = cookie("zx_csrf") || csrfToken;
  }
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (opts.signal) init.signal = opts.signal;
  const res = await fetch(path, init);
  if (opts.raw) return res;
  if (res.status === 401 && opts.redirectOn401 !== false) {
    goSignIn();
    throw new ApiError(401, "unauthorized", "Your session has ended. Please sign in again.");
  }
  if (res.status === 204) return null;
  const data = await readJSON(res);
  if (!res.ok) throw errorFrom(res, data);
  return data;
}

async function readJSON(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// errorFrom turns an error answer (admin shape or OpenAI shape) into an
// ApiError with the server's own message.
export function errorFrom(res, data) {
  const e = data && data.error;
  let msg = e && typeof e.message === "string" ? e.message : "";
  if (!msg) msg = res.status >= 500 ? "The service is unavailable right now. Try again in a moment." : `Request failed (HTTP ${res.status}).`;
  if (res.status === 429) {
    const after = res.headers.get("Retry-After");
    if (after) msg += ` Try again in ${duration(Number(after))}.`;
  }
  return new ApiError(res.status, e && e.code, msg);
}

// goSignIn leaves for /sign-in, coming back here afterwards.
export function goSignIn() {
  const back = location.pathname === "/sign-in" ? "/console" : location.pathname;
  location.assign(`/sign-in?next=${encodeURIComponent(back)}`);
}

// signOut ends the session on the server, then shows the sign-in page.
export async function signOut() {
  try {
    await api("POST", "/api/v1/sign-out", undefined, { redirectOn401: false });
  } catch {
    // Already signed out or unreachable: the sign-in page is right either way.
  }
  location.assign("/sign-in");
}

const usd2 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });

// usd formats dollars: cents for prices and charges, more digits for a
// small per-request value.
export function usd(v, { precise = false } = {}) {
  const n = Number(v) || 0;
  if (precise && n !== 0 && Math.abs(n) < 1) {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 6 }).format(n);
  }
  return usd2.format(n);
}

// flows formats a Flow amount: up to 3 decimals, or 3 significant digits
// below 0.01 so a small request does not read as 0.
// flowsUnit is an amount of Flows with its unit, singular for exactly one.
export function flowsUnit(v) {
  return `${flows(v)} ${Number(v) === 1 ? "Flow" : "Flows"}`;
}

export function flows(v) {
  // Exact to the micro-Flow, as the ledger keeps them: a user adding up
  // the request log gets the window's total, digit for digit.
  return new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 }).format(Number(v) || 0);
}

// int formats a count with thousands separators.
export function int(v) {
  return new Intl.NumberFormat("en-US").format(Number(v) || 0);
}

const dtf = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const df = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

// dateTime formats an RFC 3339 time in the reader's zone; "—" for null.
export function dateTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : dtf.format(d);
}

// date formats the day of an RFC 3339 time.
export function date(s) {
  if (!s) return "—";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : df.format(d);
}

// duration formats whole seconds as "4h 05m 09s", "12m 03s" or "9s".
export function duration(total) {
  const s = Math.max(0, Math.floor(Number(total) || 0));
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const p = (n) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${p(hh)}h ${p(mm)}m`;
  if (hh > 0) return `${hh}h ${p(mm)}m ${p(ss)}s`;
  if (mm > 0) return `${mm}m ${p(ss)}s`;
  return `${ss}s`;
}

// title capitalises a word from the API ("payg" stays as the UI names it).
export function title(s) {
  const names = { payg: "Pay-as-you-go", subscription: "Subscription", ok: "OK" };
  if (names[s]) return names[s];
  const t = String(s || "").replaceAll("_", " ");
  return t.charAt(0).toUpperCase() + t.slice(1);
}

let toastTimer = 0;

// toast shows a short message at the bottom, announced to screen readers.
export function toast(msg) {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3200);
}

// copyText puts text on the clipboard; where the Clipboard API is missing
// (a plain-HTTP origin) it selects the input so the user can copy it.
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard");
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
    }
    toast("Press Ctrl+C (⌘C) to copy the selected key");
    return false;
  }
}

// setBusy disables a button while an action runs and shows why.
export function setBusy(btn, busy, label) {
  if (busy) {
    btn.dataset.label = btn.textContent;
    btn.textContent = label || "Working…";
    btn.disabled = true;
  } else {
    btn.textContent = btn.dataset.label || btn.textContent;
    btn.disabled = false;
  }
}

// meter fills a .meter element to used/limit and marks it near or at the limit.
export function meter(el, used, limit) {
  const u = Number(used) || 0, l = Number(limit) || 0;
  const pct = l > 0 ? Math.min(100, (u / l) * 100) : 0;
  el.firstElementChild.style.width = `${pct}%`;
  el.classList.toggle("warn", pct >= 80 && pct < 100);
  el.classList.toggle("full", pct >= 100);
  el.setAttribute("aria-valuenow", String(Math.round(pct)));
}

// badgeFor picks a badge colour for a status word.
export function badgeFor(status) {
  const map = {
    succeeded: "badge-ok", completed: "badge-ok", confirmed: "badge-ok", active: "badge-ok", paid: "badge-ok", ok: "badge-ok",
    processing: "badge-info", pending: "badge-info",
    failed: "badge-danger", rejected: "badge-danger", error: "badge-danger",
    canceled: "badge", cancelled: "badge",
  };
  return `badge ${map[status] || ""}`.trim();
}

// initHeader shows "Console" or "Sign in" in a page header by the session hint.
export function initHeader() {
  const signIn = document.getElementById("header-sign-in");
  const console_ = document.getElementById("header-console");
  if (!signIn || !console_) return;
  const hint = hasSessionHint();
  signIn.hidden = hint;
  console_.hidden = !hint;
}
