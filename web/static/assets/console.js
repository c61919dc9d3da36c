// /console: the subscriber's own account through /api/v1/me… — windows
// and the live countdown (U1), the Flow breakdown, the request log, keys
// (K1, K2), Extra Usage (E1, E4), plan requests, billing history and the
// refund dialog (R1–R3). Every change sends the CSRF token (lib.api).

import {
  $, h, replace, api, setCsrf, signOut, usd, flows, int, dateTime, date, duration, title,
  toast, copyText, setBusy, meter, badgeFor,
} from "/assets/lib.js";
import { chart, hbars } from "/assets/charts.js";

const state = { account: null, pricing: null, keys: [], usage: null, resetsAt: 0, logCursor: null };

// ---- windows and countdown ----

function windowText(w) {
  return `${flows(w.used_flows)} / ${flows(w.limit_flows)} Flows`;
}

function renderUsage(u) {
  state.usage = u;
  const w = u.window_5h;
  $("w5-used").textContent = flows(w.used_flows);
  $("w5-limit").textContent = flows(w.limit_flows);
  $("w5-remaining").textContent = flows(w.remaining_flows);
  meter($("w5-meter"), w.used_flows, w.limit_flows);
  $("w5-started").textContent = w.started_at ? `Started ${dateTime(w.started_at)}` : "No window is running: the next request starts one.";
  state.resetsAt = w.resets_at ? new Date(w.resets_at).getTime() : 0;
  $("w5-resets").textContent = w.resets_at ? `at ${dateTime(w.resets_at)}` : "Full quota available";
  tick();
  for (const [key, id] of [["weekly", "wk"], ["monthly", "mo"]]) {
    const x = u[key];
    $(`${id}-text`).textContent = windowText(x);
    meter($(`${id}-meter`), x.used_flows, x.limit_flows);
    $(`${id}-resets`).textContent = x.resets_at ? `${flows(x.remaining_flows)} Flows left · resets ${dateTime(x.resets_at)}` : `${flows(x.remaining_flows)} Flows left`;
  }
  $("extra-spent-top").textContent = usd(u.extra_usage ? u.extra_usage.spent_usd : 0, { precise: true });
}

let refetching = false;

function tick() {
  const el = $("w5-countdown");
  if (!state.resetsAt) {
    el.textContent = "—";
    return;
  }
  const left = Math.ceil((state.resetsAt - Date.now()) / 1000);
  el.textContent = duration(Math.max(0, left));
  if (left <= 0 && !refetching) {
    // The window is over: show the fresh one the ledger reports.
    refetching = true;
    state.resetsAt = 0;
    loadUsage().finally(() => { refetching = false; });
  }
}

async function loadUsage() {
  const u = await api("GET", "/api/v1/me/usage");
  renderUsage(u);
  return u;
}

// ---- breakdown charts ----

async function loadBreakdown() {
  let b;
  try {
    b = await api("GET", "/api/v1/me/usage/breakdown");
  } catch (e) {
    if (e.status !== 404 || !state.usage) throw e;
    b = state.usage;
  }
  const byModel = (b.by_model || []).map((m) => ({ label: m.model, value: Number(m.flows) || 0, note: `${int(m.requests)} req` }))
    .sort((a, c) => c.value - a.value).slice(0, 12);
  hbars($("by-model"), byModel, (v) => `${flows(v)} Flows`, "No requests yet. Your Flows per model show here.");
  const days = (b.by_day || []).slice(-30);
  chart($("by-day"), {
    xs: days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000),
    ys: days.map((d) => Number(d.flows) || 0),
    label: "Flows",
    kind: "bars",
    yFmt: flows,
    step: 86400,
    xFmt: (v) => new Date(v * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" }),
    xLabel: (v) => (v == null ? "—" : date(new Date(v * 1000).toISOString())),
    empty: "No requests yet. Your Flows per day show here.",
  });
}

// ---- request log ----

function logRow(r) {
  return h("tr", {},
    h("td", { class: "num", text: dateTime(r.at) }),
    h("td", {}, h("span", { class: "mono", text: r.model })),
    h("td", { class: "r", text: `${int(r.input_tokens)} / ${int(r.output_tokens)}` }),
    h("td", { class: "r", text: r.billing === "payg" ? "—" : flows(r.flows) }),
    h("td", { class: "r", text: usd(r.usd_value, { precise: true }) }),
    h("td", {}, h("span", { class: `badge badge-plain ${r.billing === "payg" ? "badge-warn" : "badge-accent"}`, text: title(r.billing) })),
    h("td", {}, h("span", { class: badgeFor(r.status), text: title(r.status) + (r.estimated ? " (estimated)" : "") })));
}

async function loadLog(more) {
  const q = new URLSearchParams({ limit: "25" });
  if (more && state.logCursor) q.set("cursor", state.logCursor);
  const page = await api("GET", `/api/v1/me/requests?${q}`);
  const body = $("log-body");
  if (!more) replace(body);
  for (const r of page.data || []) body.append(logRow(r));
  if (!body.children.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: "7", text: "No requests yet. Point a tool at your key and they show up here." })));
  state.logCursor = page.next_cursor || null;
  $("log-more").hidden = !state.logCursor;
}

// ---- dialogs ----

function confirmDialog(titleText, text, yesLabel) {
  const d = $("confirm-dialog");
  $("confirm-title").textContent = titleText;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yesLabel;
  d.returnValue = "";
  d.showModal();
  $("confirm-no").focus();
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
  });
}

function showSecret(key, heading) {
  $("secret-title").textContent = heading;
  $("secret-label").textContent = `${key.name || "Key"} (${title(key.kind)})`;
  const input = $("secret-value");
  input.value = key.key;
  $("secret-dialog").showModal();
  input.select();
}

function wireSecretDialog() {
  const d = $("secret-dialog");
  $("secret-copy").addEventListener("click", () => copyText($("secret-value").value, $("secret-value")));
  $("secret-done").addEventListener("click", () => d.close());
  // The secret leaves the page once the dialog closes.
  d.addEventListener("close", () => { $("secret-value").value = ""; });
}

// ---- keys ----

function keyRow(k) {
  const rotate = h("button", { type: "button", class: "btn btn-sm", "aria-label": `Rotate key ${k.name || k.last4}` }, "Rotate");
  const revoke = h("button", { type: "button", class: "btn btn-sm btn-danger", "aria-label": `Revoke key ${k.name || k.last4}` }, "Revoke");
  rotate.addEventListener("click", async () => {
    const ok = await confirmDialog("Rotate this key?", `“${k.name || "Unnamed key"}” gets a new secret. The current one stops working at once, so update every tool that uses it.`, "Rotate key");
    if (!ok) return;
    try {
      const nk = await api("POST", `/api/v1/me/keys/${encodeURIComponent(k.id)}/rotate`);
      showSecret(nk, "Your rotated key");
      await loadKeys();
    } catch (e) {
      toast(e.message);
    }
  });
  revoke.addEventListener("click", async () => {
    const ok = await confirmDialog("Revoke this key?", `“${k.name || "Unnamed key"}” (…${k.last4}) stops working at once and is deleted. Sessions signed in with it end too. This cannot be undone.`, "Revoke key");
    if (!ok) return;
    try {
      await api("DELETE", `/api/v1/me/keys/${encodeURIComponent(k.id)}`);
      toast("Key revoked");
      await Promise.all([loadKeys(), loadExtra()]);
    } catch (e) {
      toast(e.message);
    }
  });
  return h("tr", {},
    h("td", { text: k.name || "Unnamed key" }),
    h("td", {}, h("span", { class: `badge badge-plain ${k.kind === "payg" ? "badge-warn" : "badge-accent"}`, text: title(k.kind) })),
    h("td", {}, h("span", { class: "mono", text: `${k.kind === "payg" ? "sk-ai-v1" : "sk-ss-v1"}-…${k.last4}` })),
    h("td", { text: date(k.created_at) }),
    h("td", { text: k.last_used_at ? dateTime(k.last_used_at) : "Never" }),
    h("td", {}, h("div", { class: "row-actions" }, rotate, revoke)));
}

async function loadKeys() {
  const res = await api("GET", "/api/v1/me/keys");
  state.keys = res.data || [];
  const body = $("keys-body");
  replace(body, state.keys.map(keyRow));
  if (!state.keys.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: "6", text: "No keys yet. Create one above." })));
  renderExtraKeys();
}

function wireKeyForm() {
  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const btn = $("key-create");
    setBusy(btn, true, "Creating…");
    try {
      const k = await api("POST", "/api/v1/me/keys", { kind: $("key-kind").value, name: $("key-name").value.trim() });
      $("key-name").value = "";
      showSecret(k, "Your new key");
      await loadKeys();
    } catch (e) {
      toast(e.message);
    } finally {
      setBusy(btn, false);
    }
  });
}

// ---- Extra Usage ----

let extra = null;

function renderExtraKeys() {
  const sel = $("extra-key");
  const payg = state.keys.filter((k) => k.kind === "payg");
  const chosen = extra && extra.payg_key_id;
  replace(sel,
    chosen ? null : h("option", { value: "", text: payg.length ? "Choose a key…" : "No pay-as-you-go key yet" }),
    payg.map((k) => h("option", { value: k.id, selected: k.id === chosen, text: `${k.name || "Unnamed key"} (…${k.last4})` })));
  sel.disabled = !payg.length;
  $("extra-key-hint").textContent = payg.length ? "" : "Create a pay-as-you-go key in API keys below, then pick it here.";
}

function renderExtra(x) {
  extra = x;
  const sw = $("extra-switch");
  sw.checked = !!x.enabled;
  $("extra-state").textContent = x.enabled ? "On" : "Off";
  const k = x.payg_key;
  $("extra-key-name").textContent = k ? `${k.name || "Unnamed key"} (…${k.last4})` : "None";
  $("extra-key-created").textContent = k ? date(k.created_at) : "—";
  $("extra-key-used").textContent = k ? (k.last_used_at ? dateTime(k.last_used_at) : "Never") : "—";
  $("extra-spent").textContent = usd(x.spent_usd, { precise: true });
  $("extra-balance").textContent = usd(x.balance_usd);
  $("balance-top").textContent = usd(x.balance_usd);
  renderExtraKeys();
}

async function loadExtra() {
  renderExtra(await api("GET", "/api/v1/me/extra-usage"));
}

async function putExtra(enabled, keyID) {
  const body = { enabled };
  if (keyID) body.payg_key_id = keyID;
  try {
    renderExtra(await api("PUT", "/api/v1/me/extra-usage", body));
    toast(enabled ? "Extra Usage is on" : "Extra Usage is off");
  } catch (e) {
    toast(e.message);
    if (extra) renderExtra(extra);
  }
}

function wireExtra() {
  const sw = $("extra-switch");
  sw.addEventListener("change", () => {
    const keyID = $("extra-key").value;
    if (sw.checked && !keyID) {
      sw.checked = false;
      toast("Pick a pay-as-you-go key first");
      $("extra-key").focus();
      return;
    }
    putExtra(sw.checked, sw.checked ? keyID : "");
  });
  $("extra-key").addEventListener("change", () => {
    const keyID = $("extra-key").value;
    if (keyID && extra && extra.enabled) putExtra(true, keyID);
    else if (keyID) toast("Key chosen. Turn Extra Usage on to use it.");
  });
}

// ---- plan and plan requests ----

function planName(id) {
  const p = state.pricing && state.pricing.plans.find((x) => x.id === id);
  return p ? p.name || p.id : id;
}

function renderPlan(a) {
  const s = a.subscription || {};
  $("plan-badge").textContent = `${planName(a.plan)} plan`;
  $("plan-badge").hidden = false;
  $("sub-plan").textContent = planName(a.plan);
  const st = $("sub-status");
  if (s.status === "past_due") {
    // A renewal card payment failed: the plan stays until the last retry.
    st.textContent = s.past_due_until ? `Past due: payment retried until ${date(s.past_due_until)}` : "Past due";
    st.className = "badge badge-warn";
  } else {
    st.textContent = s.status === "canceled" ? "Cancels at cycle end" : "Active";
    st.className = s.status === "canceled" ? "badge badge-warn" : "badge badge-ok";
  }
  const card = a.payments && a.payments.driver === "stripe";
  if (a.payments && a.payments.message) $("payments-notice").textContent = a.payments.message;
  $("sub-cycle").textContent = s.cycle_start ? `${date(s.cycle_start)} – ${date(s.cycle_end)}` : "Monthly from sign-up";
  $("sub-paid").textContent = usd(s.paid_usd);
  $("sub-pending").textContent = s.pending_plan ? `${planName(s.pending_plan)} from ${date(s.cycle_end)}` : "—";
  const sel = $("plan-select");
  const plans = state.pricing ? state.pricing.plans.filter((p) => p.id !== a.plan && Number(p.price_usd) > 0) : [];
  replace(sel, plans.map((p) => h("option", { value: p.id, text: `${p.name || p.id} — $${Number(p.price_usd)}/month` })));
  const paid = a.plan !== "free" && s.cycle_start;
  $("plan-submit").textContent = card ? (paid ? "Change plan" : "Subscribe") : (paid ? "Request change" : "Request subscription");
  $("plan-cancel").textContent = card ? "Cancel at cycle end" : "Request cancellation";
  $("plan-cancel").hidden = !paid || s.status === "canceled";
  const wanted = location.hash.match(/^#plan-([a-z0-9_-]+)$/);
  if (wanted && plans.some((p) => p.id === wanted[1])) {
    sel.value = wanted[1];
    $("plan").scrollIntoView({ block: "start" });
    sel.focus();
  }
}

async function loadPlanRequests() {
  const list = $("plan-requests");
  let res;
  try {
    res = await api("GET", "/api/v1/me/plan-requests");
  } catch (e) {
    if (e.status === 404) return;
    throw e;
  }
  const rows = (res.data || []).slice().reverse().slice(0, 5);
  replace(list, rows.map((r) => h("li", { class: "pill-row" },
    h("span", { class: badgeFor(r.status), text: title(r.status) }),
    h("span", { text: `${title(r.action)}${r.action === "cancel" ? "" : ` to ${planName(r.plan)}`}` }),
    h("span", { class: "muted", text: dateTime(r.requested_at) }))));
  if (!rows.length) list.append(h("li", { class: "muted", text: "No plan requests." }));
}

async function requestPlan(action, plan) {
  try {
    const r = await api("POST", "/api/v1/me/plan-requests", plan ? { action, plan } : { action });
    // A card driver answers the page to pay on; the plan changes when the
    // payment's webhook reaches the server, not on the way back here.
    if (r && r.checkout_url) {
      location.assign(r.checkout_url);
      return;
    }
    toast(r && r.message ? r.message : "Request sent. The operator will confirm it.");
    await loadPlanRequests();
  } catch (e) {
    toast(e.message);
  }
}

function wirePlan() {
  $("plan-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const plan = $("plan-select").value;
    if (!plan || !state.account) return;
    const paid = state.account.plan !== "free" && state.account.subscription && state.account.subscription.cycle_start;
    requestPlan(paid ? "change" : "subscribe", plan);
  });
  $("plan-cancel").addEventListener("click", async () => {
    const ok = await confirmDialog("Cancel your subscription?", "Your plan stays until the end of this billing cycle, then your account moves to Free. The operator confirms the request.", "Request cancellation");
    if (ok) requestPlan("cancel", state.account ? state.account.plan : "");
  });
}

// ---- top-ups ----

// wireTopUp adds the "Top up" form under the balance: the server answers a
// Checkout page to pay on (409 payments_not_configured without card
// payments, shown as it says); the balance grows when the payment's
// webhook is applied.
function wireTopUp() {
  const balance = $("balance-top");
  const input = h("input", { id: "topup-amount", type: "number", min: "1", step: "0.01", inputmode: "decimal", placeholder: "10.00", required: "" });
  const button = h("button", { type: "submit", class: "btn", id: "topup-submit", text: "Top up" });
  const form = h("form", { id: "topup-form", class: "field-row" },
    h("div", { class: "field" }, h("label", { for: "topup-amount", text: "Add to balance (USD)" }), input), button);
  balance.closest("dl").after(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const amount = input.value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(amount)) {
      toast("Enter an amount in dollars and cents, like 10 or 12.50.");
      return;
    }
    try {
      const r = await api("POST", "/api/v1/me/top-ups", { amount_usd: amount });
      if (r && r.checkout_url) location.assign(r.checkout_url);
    } catch (e) {
      toast(e.message);
    }
  });
}

// ---- billing and refunds ----

const billingTypes = {
  subscribe: "Subscription payment",
  upgrade: "Upgrade charge",
  renewal: "Renewal",
  topup: "Balance top-up",
  refund: "Refund",
  refund_request: "Refund requested",
};

function billingRow(b) {
  const refundID = b.refund_id || (b.type === "refund" ? b.id : "");
  let action = null;
  if (refundID) {
    action = h("button", { type: "button", class: "btn btn-sm", "aria-label": `Status of refund ${refundID}` }, "Status");
    action.addEventListener("click", () => openRefund(refundID));
  }
  const amount = Number(b.amount_usd) || 0;
  return h("tr", {},
    h("td", { class: "num", text: dateTime(b.at) }),
    h("td", { text: billingTypes[b.type] || title(b.type) }),
    h("td", { text: b.plan ? planName(b.plan) : "—" }),
    h("td", { class: "r", text: amount < 0 ? `−${usd(-amount)}` : usd(amount) }),
    h("td", {}, b.status ? h("span", { class: badgeFor(b.status), text: title(b.status) }) : "—"),
    h("td", { class: "r" }, action));
}

async function loadBilling() {
  const res = await api("GET", "/api/v1/me/billing");
  const rows = (res.data || []).slice().reverse();
  const body = $("billing-body");
  replace(body, rows.map(billingRow));
  if (!rows.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: "6", text: "No payments yet." })));
}

const refundStatusText = {
  processing: "Processing: the refund is on its way and is returned within 1–3 business days.",
  succeeded: "Succeeded: the refund is complete and the money is back on your payment method.",
  failed: "Failed: the refund could not be processed. Please contact support.",
  canceled: "Canceled: the refund request was canceled.",
};

let refundPoll = 0;

// minus shows a deduction; nothing deducted shows as a plain $0.00.
function minus(v) {
  return Number(v) > 0 ? `−${usd(v)}` : usd(0);
}

function refundLines(p) {
  replace($("refund-lines"),
    h("dt", { text: "Total paid this cycle" }), h("dd", { text: usd(p.total_paid_usd) }),
    h("dt", { text: "Actual usage (API value)" }), h("dd", { text: minus(p.usage_usd) }),
    h("dt", { text: "Already refunded" }), h("dd", { text: minus(p.already_refunded_usd) }),
    h("dt", { text: "Refundable balance" }), h("dd", { text: usd(p.refundable_usd) }),
    h("dt", { text: "Payment processing fee (5%)" }), h("dd", { text: minus(p.fee_usd) }),
    h("dt", {}, h("strong", { text: "Final refund" })), h("dd", {}, h("strong", { text: usd(p.final_usd) })));
}

function refundStatus(r) {
  replace($("refund-status"),
    h("div", { class: "pill-row" }, h("span", { class: badgeFor(r.status), text: title(r.status) }), h("span", { class: "small muted", text: `Submitted ${dateTime(r.submitted_at)}` })),
    h("p", { class: "small", text: refundStatusText[r.status] || "" }));
}

function stopRefundPoll() {
  clearTimeout(refundPoll);
  refundPoll = 0;
}

// pollRefund follows a processing refund every 3 s, for at most 10 minutes
// or until the dialog closes.
function pollRefund(id, left = 200) {
  stopRefundPoll();
  if (left <= 0) return;
  refundPoll = setTimeout(async () => {
    try {
      const r = await api("GET", `/api/v1/me/refunds/${encodeURIComponent(id)}`);
      refundLines(r);
      refundStatus(r);
      if (r.status === "processing") pollRefund(id, left - 1);
      else loadBilling().catch(() => {});
    } catch {
      pollRefund(id, left - 1);
    }
  }, 3000);
}

async function openRefund(refundID) {
  const d = $("refund-dialog");
  const err = $("refund-error");
  const submit = $("refund-submit");
  err.hidden = true;
  replace($("refund-lines"));
  replace($("refund-status"));
  submit.hidden = !!refundID;
  submit.disabled = true;
  if (!d.open) d.showModal();
  try {
    if (refundID) {
      const r = await api("GET", `/api/v1/me/refunds/${encodeURIComponent(refundID)}`);
      refundLines(r);
      refundStatus(r);
      if (r.status === "processing") pollRefund(r.id);
      return;
    }
    replace($("refund-status"), h("p", { class: "small muted", text: "Calculating your refund…" }));
    const p = await api("POST", "/api/v1/me/refunds/preview");
    replace($("refund-status"));
    refundLines(p);
    if (!p.eligible) {
      err.textContent = `Not eligible for a refund: ${p.reason || "see the refund rules above"}.`;
      err.hidden = false;
      return;
    }
    submit.disabled = false;
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

function wireRefund() {
  const d = $("refund-dialog");
  const submit = $("refund-submit");
  $("refund-open").addEventListener("click", () => openRefund(""));
  $("refund-close").addEventListener("click", () => d.close());
  d.addEventListener("close", stopRefundPoll);
  submit.addEventListener("click", async () => {
    setBusy(submit, true, "Submitting…");
    try {
      const r = await api("POST", "/api/v1/me/refunds");
      setBusy(submit, false);
      submit.hidden = true;
      refundLines(r);
      refundStatus(r);
      if (r.status === "processing") pollRefund(r.id);
      Promise.all([loadBilling(), loadAccount(), loadUsage()]).catch(() => {});
    } catch (e) {
      setBusy(submit, false);
      const err = $("refund-error");
      err.textContent = e.message;
      err.hidden = false;
    }
  });
}

// ---- account ----

async function loadAccount() {
  const a = await api("GET", "/api/v1/me");
  setCsrf(a.csrf_token);
  state.account = a;
  $("account-name").textContent = a.name ? `${a.name} · ${a.email}` : a.email;
  renderPlan(a);
  return a;
}

function section(name, fn) {
  return fn().catch((e) => {
    if (e.status === 401) return;
    const el = $("load-error");
    el.hidden = false;
    el.textContent = `${name} could not be loaded: ${e.message}`;
  });
}

async function main() {
  $("sign-out").addEventListener("click", signOut);
  wireSecretDialog();
  wireKeyForm();
  wireExtra();
  wirePlan();
  wireTopUp();
  wireRefund();
  $("log-refresh").addEventListener("click", () => section("The request log", () => loadLog(false)));
  $("log-more").addEventListener("click", () => section("The request log", () => loadLog(true)));
  try {
    state.pricing = await api("GET", "/api/v1/pricing", undefined, { redirectOn401: false });
  } catch {
    state.pricing = { plans: [], models: [] };
  }
  try {
    await loadAccount();
  } catch (e) {
    if (e.status !== 401) {
      const el = $("load-error");
      el.textContent = `Your account could not be loaded: ${e.message}`;
      el.hidden = false;
    }
    return;
  }
  await section("Usage", loadUsage);
  await Promise.all([
    section("The Flow breakdown", loadBreakdown),
    section("Keys", loadKeys),
    section("Extra Usage", loadExtra),
    section("Plan requests", loadPlanRequests),
    section("Billing history", loadBilling),
    section("The request log", () => loadLog(false)),
  ]);
  setInterval(tick, 1000);
  // Usage moves with every request from any tool: refresh it each minute
  // while the page is visible.
  setInterval(() => {
    if (document.visibilityState === "visible") section("Usage", loadUsage);
  }, 60000);
}

main();
