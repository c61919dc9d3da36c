// Charts on top of the vendored uPlot (assets/vendor/uplot, loaded by the
// page as a classic script that defines window.uPlot). Colours come from
// the stylesheet's variables, so a chart follows light and dark; each
// chart redraws when its box resizes or the colour scheme changes.

import { h, replace } from "/assets/lib.js";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function axis(fmt) {
  const a = {
    stroke: cssVar("--muted"),
    grid: { stroke: cssVar("--border"), width: 1 },
    ticks: { stroke: cssVar("--border"), width: 1 },
    font: "12px system-ui, sans-serif",
  };
  if (fmt) a.values = (u, vals) => vals.map(fmt);
  return a;
}

const charts = new Set();

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  for (const c of charts) c.draw();
});

// chart draws one series into box. spec: {xs, ys, label, kind: "bars" |
// "step" | "line", yFmt, xFmt, xTime, step (seconds between ticks' minimum),
// height, empty}. An empty series shows the
// empty text instead of an empty plot.
export function chart(box, spec) {
  const old = box._chart;
  if (old) old.destroy();
  const c = {
    u: null,
    ro: null,
    draw() {
      if (this.u) this.u.destroy();
      this.u = null;
      if (!spec.xs.length) {
        replace(box, h("div", { class: "chart-empty", text: spec.empty || "No data yet" }));
        return;
      }
      replace(box);
      const width = Math.max(240, box.clientWidth);
      const color = cssVar(spec.color || "--chart-1");
      const series = {
        label: spec.label,
        stroke: color,
        width: 2,
        value: (u, v) => (v == null ? "—" : spec.yFmt ? spec.yFmt(v) : String(v)),
      };
      if (spec.kind === "bars") {
        series.fill = color;
        series.paths = window.uPlot.paths.bars({ size: [0.6, 48], align: 0 });
        series.points = { show: false };
      } else if (spec.kind === "step") {
        series.paths = window.uPlot.paths.stepped({ align: 1 });
        series.fill = `${color}22`;
        series.points = { show: true, size: 6, fill: color };
      }
      const opts = {
        width,
        height: spec.height || 240,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: spec.xTime !== false }, y: { range: (u, min, max) => [spec.kind === "bars" ? 0 : min * 0.98, max > 0 ? max * 1.08 : 1] } },
        // A series of whole steps (days) gets ticks on steps only, not
        // on the hours between them.
        axes: [Object.assign(axis(spec.xFmt), spec.step ? { incrs: [1, 2, 7, 14, 30].map((n) => n * spec.step) } : {}), Object.assign(axis(spec.yFmt), { size: 64 })],
        series: [{ value: (u, v) => (spec.xLabel ? spec.xLabel(v) : String(v)) }, series],
      };
      const first = spec.xs[0], last = spec.xs[spec.xs.length - 1];
      if ((spec.kind === "bars" && spec.xs.length === 1) || (spec.step && last - first < 2 * spec.step)) {
        // One bar alone would fill the plot, and a series shorter than two
        // steps would get ticks every few minutes: pad a step each side.
        const step = spec.step || 86400;
        opts.scales.x.range = () => [first - step, last + step];
      }
      this.u = new window.uPlot(opts, [spec.xs, spec.ys], box);
    },
    destroy() {
      if (this.u) this.u.destroy();
      if (this.ro) this.ro.disconnect();
      charts.delete(this);
    },
  };
  c.draw();
  let lastWidth = box.clientWidth;
  c.ro = new ResizeObserver(() => {
    if (!c.u || box.clientWidth === lastWidth) return;
    lastWidth = box.clientWidth;
    c.u.setSize({ width: Math.max(240, box.clientWidth), height: spec.height || 240 });
  });
  c.ro.observe(box);
  charts.add(c);
  box._chart = c;
  return c;
}

// hbars draws a horizontal bar list (category → value) with plain
// elements: easier to read than a plot for model names of any length.
export function hbars(box, rows, fmt, empty) {
  if (!rows.length) {
    replace(box, h("div", { class: "chart-empty", text: empty || "No data yet" }));
    return;
  }
  const maxV = Math.max(...rows.map((r) => r.value), 0);
  const list = h("div", { class: "hbars", role: "list" });
  for (const r of rows) {
    const fill = h("span");
    fill.style.width = `${maxV > 0 ? (r.value / maxV) * 100 : 0}%`;
    list.append(
      h("div", { class: "hbar-row", role: "listitem" },
        h("span", { class: "name", title: r.label, text: r.label }),
        h("span", { class: "val", text: fmt(r.value) + (r.note ? ` · ${r.note}` : "") }),
        h("div", { class: "track", "aria-hidden": "true" }, fill)),
    );
  }
  replace(box, list);
}
