// /pricing: the plans with their derived figures (P2), the live Flow rate
// and its history, and the models each plan may call (P3), all from the
// public GET /api/v1/pricing.

import { $, h, replace, usd, flows, flowsUnit, dateTime, initHeader, api } from "/assets/lib.js";
import { chart } from "/assets/charts.js";

const taglines = {
  free: "Free trial",
  pro: "Top choice for developers",
  max: "For heavy daily building",
  ultra: "The most Flows per dollar",
};

function rateHistory(p) {
  const hist = p.rate_history || p.history || [];
  const points = hist
    .map((r) => [Math.floor(new Date(r.at).getTime() / 1000), Number(r.usd_per_flow)])
    .filter((r) => Number.isFinite(r[0]) && Number.isFinite(r[1]));
  if (!points.length && p.updated_at) points.push([Math.floor(new Date(p.updated_at).getTime() / 1000), Number(p.usd_per_flow)]);
  points.sort((a, b) => a[0] - b[0]);
  // The rate holds until now: end the step line at the current time.
  const now = Math.floor(Date.now() / 1000);
  if (points.length && points[points.length - 1][0] < now) points.push([now, points[points.length - 1][1]]);
  return points;
}

function rateFmt(v) {
  return `$${Number(v).toFixed(5).replace(/0+$/, "").replace(/\.$/, "")}`;
}

function renderRate(p) {
  const rate = Number(p.usd_per_flow);
  replace($("rate-value"), rateFmt(rate), h("small", { text: " per Flow" }));
  $("rate-approx").textContent = rate > 0 ? `About ${Math.round(1 / rate)} Flows = $1` : "";
  $("rate-updated").textContent = dateTime(p.updated_at);
  let pts = rateHistory(p);
  // One rate since the seed is a flat line worth a sentence, not a plot.
  const changes = (p.rate_history || []).length;
  const since = changes ? dateTime(p.rate_history[0].at) : dateTime(p.updated_at);
  if (changes <= 1) pts = [];
  chart($("rate-chart"), {
    xs: pts.map((x) => x[0]),
    ys: pts.map((x) => x[1]),
    label: "USD per Flow",
    kind: "step",
    yFmt: rateFmt,
    step: 86400,
    xFmt: (v) => new Date(v * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric" }),
    xLabel: (v) => (v == null ? "—" : dateTime(new Date(v * 1000).toISOString())),
    empty: `${rateFmt(rate)} per Flow, unchanged since ${since}. Every change will show here.`,
  });
}

// price shows a plan price as the seed does: "$20", cents only when it has them.
function price(v) {
  const n = Number(v) || 0;
  return Number.isInteger(n) ? `$${n.toLocaleString("en-US")}` : usd(n);
}

function multiplier(p) {
  return p.value_multiplier == null ? "—" : `${Number(p.value_multiplier).toFixed(2)}×`;
}

function cta(plan) {
  if (Number(plan.price_usd) === 0) {
    return h("a", { class: "btn btn-block", href: "/sign-in" }, "Start free");
  }
  return h("a", { class: `btn btn-block ${plan.id === "pro" ? "btn-primary" : ""}`, href: `/console#plan-${plan.id}` }, `Get ${plan.name || plan.id}`);
}

function renderPlans(plans) {
  const box = $("plans");
  replace(box);
  for (const p of plans) {
    const featured = p.id === "pro";
    box.append(
      h("article", { class: `card plan${featured ? " featured" : ""}`, "aria-labelledby": `plan-${p.id}-name` },
        featured ? h("span", { class: "ribbon", text: "Most popular" }) : null,
        h("div", {},
          h("h3", { id: `plan-${p.id}-name`, text: p.name || p.id }),
          h("p", { class: "small muted", text: taglines[p.id] || "\u00a0" })),
        h("div", { class: "plan-price" }, price(p.price_usd), h("small", { text: " / month" })),
        h("ul", {},
          h("li", {}, h("span", { text: "5-hour quota" }), h("span", { text: flowsUnit(p.window_5h_flows) })),
          h("li", {}, h("span", { text: "Weekly max" }), h("span", { text: flowsUnit(p.weekly_flows) })),
          h("li", {}, h("span", { text: "Monthly max" }), h("span", { text: flowsUnit(p.monthly_flows) })),
          h("li", {}, h("span", { text: "Rate limit" }), h("span", { text: `${p.rpm} RPM, burst ${p.burst}` })),
          h("li", {}, h("span", { text: "USD equivalent" }), h("span", { text: usd(p.usd_equivalent) })),
          h("li", {}, h("span", { text: "Value multiplier" }), h("span", { text: multiplier(p) }))),
        cta(p)),
    );
  }
}

function renderCompare(plans) {
  const body = $("compare");
  replace(body);
  for (const p of plans) {
    body.append(h("tr", {},
      h("th", { scope: "row", text: p.name || p.id }),
      h("td", { class: "r", text: `${price(p.price_usd)}/mo` }),
      h("td", { class: "r", text: flows(p.window_5h_flows) }),
      h("td", { class: "r", text: flows(p.weekly_flows) }),
      h("td", { class: "r", text: flows(p.monthly_flows) }),
      h("td", { class: "r", text: `${p.rpm} RPM, burst ${p.burst}` }),
      h("td", { class: "r", text: usd(p.usd_equivalent) }),
      h("td", { class: "r", text: multiplier(p) })));
  }
}

function priceCell(perMTok) {
  const n = Number(perMTok) || 0;
  return n === 0 ? "—" : usd(n, { precise: true });
}

function renderModels(p) {
  const planSel = $("model-plan");
  const search = $("model-search");
  const names = new Map(p.plans.map((x) => [x.id, x.name || x.id]));
  replace(planSel, h("option", { value: "", text: "All plans" }), p.plans.map((x) => h("option", { value: x.id, text: x.name || x.id })));
  const draw = () => {
    const plan = planSel.value;
    const q = search.value.trim().toLowerCase();
    const rows = p.models.filter((m) =>
      (!plan || (m.plans || []).includes(plan)) &&
      (!q || m.id.toLowerCase().includes(q) || String(m.name || "").toLowerCase().includes(q)));
    const body = $("models");
    replace(body);
    for (const m of rows) {
      const out = Number(m.image_usd) > 0 ? `${usd(m.image_usd, { precise: true })} / image` : priceCell(m.output_usd_per_mtok);
      body.append(h("tr", {},
        h("td", {}, h("span", { text: m.name || m.id }), h("span", { class: "sub mono", text: m.id })),
        h("td", { class: "r", text: priceCell(m.input_usd_per_mtok) }),
        h("td", { class: "r", text: out }),
        h("td", {}, h("span", { class: "pill-row" }, (m.plans || []).map((id) => h("span", { class: "badge badge-plain", text: names.get(id) || id }))))));
    }
    if (!rows.length) body.append(h("tr", {}, h("td", { class: "empty", colspan: "4", text: "No model matches." })));
    const where = plan ? ` on ${names.get(plan) || plan}` : "";
    $("model-count").textContent = `${rows.length} model${rows.length === 1 ? "" : "s"}${where}`;
  };
  planSel.addEventListener("change", draw);
  search.addEventListener("input", draw);
  draw();
}

async function main() {
  initHeader();
  try {
    const p = await api("GET", "/api/v1/pricing", undefined, { redirectOn401: false });
    p.plans = p.plans || [];
    p.models = p.models || [];
    renderRate(p);
    renderPlans(p.plans);
    renderCompare(p.plans);
    renderModels(p);
  } catch (e) {
    const el = $("load-error");
    el.textContent = `Pricing could not be loaded: ${e.message}`;
    el.hidden = false;
  }
}

main();
