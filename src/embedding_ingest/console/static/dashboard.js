// The dashboard: four charts drawn by Chart.js (vendored) from one answer of /api/dashboard. Each chart
// has its numbers in a table below it (for screen readers, and to read exact values).
"use strict";

const STATUS_COLOURS = {NONE: "#8a8f98", PENDING: "#1565c0", SUCCESS: "#1d7a36", FAILED: "#c62828",
                        DELETING: "#6a4c93"};
const KIND_COLOURS = {line: "#1565c0", word: "#b85c00"};
let dashboardCharts = [];

function chartCard(id, title, note) {
  return h("section", {class: "card", id: id + "-card"},
    h("h2", {}, title),
    note ? h("p", {class: "muted"}, note) : "",
    h("div", {class: "chart-box"}, h("canvas", {id: id, role: "img", "aria-label": title})),
    h("details", {}, h("summary", {}, "Numbers"), h("div", {id: id + "-numbers"})));
}

function drawChart(id, config, headers, rows) {
  const canvas = document.getElementById(id);
  config.options = Object.assign({animation: false, responsive: true, maintainAspectRatio: false},
                                 config.options || {});
  dashboardCharts.push(new Chart(canvas, config));
  put(document.getElementById(id + "-numbers"),
      rows.length ? table(headers, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))
                  : h("p", {class: "muted"}, "Nothing yet."));
}

function shortTime(ms) {
  return new Date(ms).toISOString().slice(5, 19).replace("T", " ");
}

function drawItemsChart(data) {
  const kinds = Object.keys(data.items);
  const statuses = Object.keys(STATUS_COLOURS).filter((s) => kinds.some((k) => data.items[k][s]));
  drawChart("chart-items", {
    type: "bar",
    data: {labels: kinds.map((k) => k + "s"),
           datasets: statuses.map((s) => ({label: s, data: kinds.map((k) => data.items[k][s] || 0),
                                            backgroundColor: STATUS_COLOURS[s]}))},
    options: {indexAxis: "y", scales: {x: {stacked: true, title: {display: true, text: "items"}},
                                       y: {stacked: true}}},
  }, ["Kind", ...statuses], kinds.map((k) => [k, ...statuses.map((s) => data.items[k][s] || 0)]));
}

function drawUsageChart(data) {
  const days = [...new Set(data.usage_by_day.map((r) => r.day))];
  const kinds = [...new Set(data.usage_by_day.map((r) => r.kind))];
  const cell = (day, kind, key) => {
    const row = data.usage_by_day.find((r) => r.day === day && r.kind === kind);
    return row ? row[key] : 0;
  };
  const cost = days.map((d) => data.usage_by_day.filter((r) => r.day === d)
                                                .reduce((sum, r) => sum + r.cost_usd, 0));
  drawChart("chart-usage", {
    type: "bar",
    data: {labels: days, datasets: [
      ...kinds.map((k) => ({label: k + " tokens", data: days.map((d) => cell(d, k, "tokens_submitted")),
                            backgroundColor: KIND_COLOURS[k], stack: "tokens", yAxisID: "y"})),
      {type: "line", label: "cost (USD)", data: cost, borderColor: "#c62828", backgroundColor: "#c62828",
       yAxisID: "cost"}]},
    options: {scales: {y: {stacked: true, title: {display: true, text: "tokens submitted"}},
                       cost: {position: "right", grid: {drawOnChartArea: false}, beginAtZero: true,
                              ticks: {callback: (v) => "$" + Number(Number(v).toPrecision(2))},  // 5e-6 -> "$0.000005"
                              title: {display: true, text: "USD (billed tokens)"}}}},
  }, ["Day", "Kind", "Batches", "Tokens submitted", "Tokens billed", "Cost (USD)"],
     data.usage_by_day.map((r) => [r.day, r.kind, r.batches, r.tokens_submitted, r.tokens_billed,
                                   r.cost_usd.toFixed(6)]));
}

function drawTimelineChart(data) {
  const now = Date.now();
  const rows = data.timeline;
  const labels = rows.map((b) => b.kind + " " + b.batch_id.slice(0, 8));
  const waiting = rows.map((b) => [b.submitted_at * 1000, (b.results_at || b.published_at || now / 1000) * 1000]);
  const publishing = rows.map((b) => b.results_at ? [b.results_at * 1000, (b.published_at || now / 1000) * 1000]
                                                  : null);
  const ends = [...waiting, ...publishing.filter(Boolean)].flat();
  // A row per batch, every one labelled: the box grows with the number of batches.
  document.getElementById("chart-timeline").parentNode.style.height = Math.max(300, 70 + 18 * rows.length) + "px";
  drawChart("chart-timeline", {
    type: "bar",
    data: {labels: labels, datasets: [
      {label: "submitted \u2192 results read", data: waiting, backgroundColor: "#1565c0"},
      {label: "results read \u2192 published", data: publishing, backgroundColor: "#1d7a36"}]},
    options: {indexAxis: "y",
              scales: {x: {type: "linear", beginAtZero: false, min: ends.length ? Math.min(...ends) : undefined,
                           max: ends.length ? Math.max(...ends) : undefined,
                           ticks: {callback: (v) => shortTime(v), maxTicksLimit: 6},
                           title: {display: true, text: "time (UTC)"}},
                       y: {stacked: true, ticks: {autoSkip: false}}},
              plugins: {tooltip: {callbacks: {label: (c) => c.dataset.label + ": " +
                shortTime(c.raw[0]) + " \u2192 " + shortTime(c.raw[1])}}}},
  }, ["Batch", "Submitted", "Results read", "Published", "Version"],
     rows.map((b) => [b.kind + " " + b.batch_id, fmtTime(b.submitted_at), fmtTime(b.results_at),
                      fmtTime(b.published_at), b.published_version || ""]));
}

function drawExecutionsChart(data) {
  const runs = data.executions;
  drawChart("chart-executions", {
    type: "bar",
    data: {labels: runs.map((e) => e.name),
           datasets: [{label: "embeddings published", data: runs.map((e) => e.published || 0),
                       backgroundColor: runs.map((e) => e.status === "SUCCEEDED" ? "#1d7a36" : "#c62828")}]},
    options: {plugins: {legend: {display: false}},
              scales: {x: {ticks: {display: runs.length <= 12}}, y: {title: {display: true, text: "embeddings"}}}},
  }, ["Execution", "Workflow", "Status", "Published"],
     runs.map((e) => [e.name, e.workflow, e.status, e.published === null ? "" : e.published]));
}

async function dashboardView(root) {
  for (const chart of dashboardCharts) chart.destroy();
  dashboardCharts = [];
  const data = await api("/api/dashboard");
  put(root, h("h1", {}, "Dashboard"),
    h("div", {class: "cards"},
      chartCard("chart-items", "Items by embedding status", "Every line and word in the workspace."),
      chartCard("chart-usage", "Tokens and cost per day",
                "Tokens submitted per day of submission (UTC); the line is the cost of the tokens billed."),
      chartCard("chart-timeline", "Batches from submission to publish",
                "Each bar is a batch: waiting for the provider, then until its embeddings were published."),
      chartCard("chart-executions", "Embeddings published per execution", "Oldest first; red: did not succeed.")));
  drawItemsChart(data);
  drawUsageChart(data);
  drawTimelineChart(data);
  drawExecutionsChart(data);
}
