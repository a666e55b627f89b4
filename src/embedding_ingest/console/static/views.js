// The console's pages. Each view(root, params, info, live) fills `root`; `live.alive()` turns false when
// the user navigates away, which stops that page's polling.
"use strict";

const POLL_MS = 1000;
const EXECUTION_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];
const BATCH_STATUSES = ["PENDING", "VALIDATING", "IN_PROGRESS", "FINALIZING", "COMPLETED", "FAILED",
                        "EXPIRED", "CANCELING", "CANCELLED"];

function select(id, label, options, value, onchange) {
  return h("label", {}, label + " ",
    h("select", {id: id, onchange: onchange},
      h("option", {value: ""}, "all"),
      options.map((o) => h("option", {value: o, selected: o === value}, o.toLowerCase()))));
}

function executionLink(name) {
  return h("a", {href: "#/execution/" + encodeURIComponent(name)}, name);
}

// ---- Executions -----------------------------------------------------------------------------
async function executionsView(root, params, info, live) {
  const query = new URLSearchParams({limit: "20", offset: params.get("offset") || "0"});
  for (const key of ["workflow", "status"]) if (params.get(key)) query.set(key, params.get(key));
  const go = (changes) => {
    const next = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) { if (v) next.set(k, v); else next.delete(k); }
    next.delete("limit");
    location.hash = "#/executions?" + next.toString();
  };
  const controls = h("div", {class: "controls"},
    select("filter-workflow", "Workflow", ["line", "word"], params.get("workflow"),
           (ev) => go({workflow: ev.target.value, offset: ""})),
    select("filter-status", "Status", EXECUTION_STATUSES, params.get("status"),
           (ev) => go({status: ev.target.value, offset: ""})));
  if (info.actions_allowed) {
    for (const workflow of ["line", "word"]) {
      controls.appendChild(h("button", {class: "action", onclick: async () => {
        try {
          const started = await action("/api/actions/start-execution", {workflow: workflow});
          location.hash = "#/execution/" + encodeURIComponent(started.name);
        } catch (e) { showActionError(root, e); }
      }}, "Start " + workflow + " execution"));
    }
  }
  const body = h("div", {});
  put(root, h("h1", {}, "Executions"), controls, body);
  const draw = async () => {
    const page = await api("/api/executions?" + query.toString());
    const rows = page.executions.map((e) => h("tr", {"data-name": e.name},
      h("td", {}, executionLink(e.name)), h("td", {}, e.workflow), h("td", {}, badge(e.status)),
      h("td", {}, fmtTime(e.startDate)), h("td", {class: "num"}, fmtDuration(e.durationSeconds)),
      h("td", {class: "num"}, e.published === null || e.published === undefined ? "" : e.published)));
    const offset = page.offset;
    put(clear(body), 
      rows.length ? table(["Name", "Workflow", "Status", "Started", "Duration", "Published"], rows,
                          {id: "executions-table"})
                  : h("p", {class: "muted"}, "No executions match."),
      h("div", {class: "pager"},
        h("button", {disabled: offset === 0, onclick: () => go({offset: String(Math.max(0, offset - page.limit))})},
          "\u2190 Newer"),
        h("span", {}, rows.length ? (offset + 1) + "\u2013" + (offset + rows.length) : ""),
        h("button", {disabled: page.next_offset === null, onclick: () => go({offset: String(page.next_offset)})},
          "Older \u2192")));
    return page.executions.some((e) => e.status === "RUNNING");
  };
  while (live.alive() && await draw()) await live.sleep(POLL_MS * 2);
}

// ---- One execution: graph, state detail, history -------------------------------------------------
async function executionView(root, name, info, live) {
  const state = {selected: null, failedOnly: false, open: new Set(), status: null};
  const view = {};  // the graph's zoom and pan (graph.js panZoom), kept across redraws
  const header = h("div", {class: "exec-header"});
  const graphBox = h("div", {class: "graph-box", id: "graph"});
  const detail = h("aside", {class: "state-detail", id: "state-detail"},
                   h("p", {class: "muted"}, "Select a state to see its input, output, error and events."));
  const filter = h("input", {type: "checkbox", id: "history-failed-only", onchange: (ev) => {
    state.failedOnly = ev.target.checked; drawHistory();
  }});
  const historyBox = h("div", {id: "history"});
  const zoomButton = (id, label, title, act) => h("button", {id: id, class: "zoom", title: title,
    "aria-label": title, onclick: () => { if (view.pz) { act(); view.moved = true; } }}, label);
  const pane = h("div", {class: "graph-pane", id: "graph-pane"},
    h("div", {class: "graph-tools"}, legend(),
      h("span", {class: "zoom-buttons"},
        zoomButton("graph-zoom-in", "+", "Zoom in", () => view.pz.zoomIn({animate: false})),
        zoomButton("graph-zoom-out", "\u2212", "Zoom out", () => view.pz.zoomOut({animate: false})),
        h("button", {id: "graph-fit", class: "zoom", title: "Fit the graph to the pane",
                     onclick: () => { const svg = graphBox.querySelector("svg"); if (svg) fitGraph(graphBox, svg, view); }},
          "Fit"))),
    graphBox);
  graphBox.addEventListener("wheel", (ev) => { if (view.pz) { view.pz.zoomWithWheel(ev); view.moved = true; } },
                            {passive: false});
  // The state panel shares a grid row with the graph and the history below it, so it stays in view
  // (sticky) however far the page is scrolled.
  put(root, header,
    h("div", {class: "graph-section"},
      h("div", {class: "graph-main"}, pane,
        h("section", {}, h("h2", {}, "Event history"),
          h("label", {class: "filter"}, filter, " Failed events only"), historyBox)),
      detail));
  const base = "/api/executions/" + encodeURIComponent(name);

  // The summary's figures worth a glance (the rest is in the output below).
  const FIGURES = ["embeddings_published", "published_version", "total_embeddings", "batches_listed",
                   "batches_marked_complete", "items_released", "batches_still_active", "failed_state"];
  // A version is shown in its short form, as everywhere else; the whole id is its tooltip.
  const figure = (summary, k) => k === "published_version" && summary.published_version_short
    ? h("dd", {class: "mono", id: "published-version", title: summary[k]}, summary.published_version_short)
    : h("dd", {}, String(summary[k]));
  const drawHeader = (e) => {
    const summary = e.summary || {};
    put(clear(header), 
      h("h1", {}, e.name, " ", badge(e.status)),
      summary.message ? h("p", {class: "summary-message", id: "summary-message"}, summary.message) : "",
      h("dl", {class: "facts"},
        h("dt", {}, "Workflow"), h("dd", {}, e.workflow || ""),
        h("dt", {}, "Started"), h("dd", {}, fmtTime(e.startDate)),
        h("dt", {}, "Stopped"), h("dd", {}, fmtTime(e.stopDate)),
        h("dt", {}, "Duration"), h("dd", {}, fmtDuration(e.durationSeconds)),
        FIGURES.filter((k) => summary[k] !== undefined && summary[k] !== null).map((k) =>
          [h("dt", {}, k.replace(/_/g, " ")), figure(summary, k)]),
        summary.next ? [h("dt", {}, "next"), h("dd", {}, h("code", {}, summary.next))] : ""),
      e.error ? h("div", {class: "failure", id: "execution-error"},
                  h("strong", {}, e.error), h("pre", {}, pretty(e.cause))) : "",
      h("details", {}, h("summary", {}, "Execution input"), h("pre", {id: "execution-input"}, pretty(e.input))),
      e.output ? h("details", {}, h("summary", {}, "Execution output"), h("pre", {}, pretty(e.output))) : "");
  };

  const selectState = async (stateName) => {
    state.selected = stateName;
    for (const el of graphBox.querySelectorAll(".state")) {
      el.classList.toggle("selected", el.getAttribute("data-state") === stateName);
    }
    await drawDetail();
  };

  const drawDetail = async () => {
    if (!state.selected) return;
    const d = await api(base + "/states/" + encodeURIComponent(state.selected));
    const field = (label, id, value) => value === null || value === undefined || value === "" ? "" :
      [h("h3", {}, label), h("pre", {id: id}, pretty(value))];
    put(clear(detail), 
      h("h2", {}, d.name, " ", badge(d.status)),
      d.visits > 1 ? h("p", {class: "muted"}, "Showing run " + d.visit + " of " + d.visits +
                       " (the last failed one, else the last).") : "",
      d.visits === 0 ? h("p", {class: "muted"}, "Not entered.") : "",
      field("Error", "state-error", d.error), field("Cause", "state-cause", d.cause),
      field("Input", "state-input", d.input), field("Output", "state-output", d.output),
      d.events.length ? [h("h3", {}, "Events (" + d.events_total + ")"),
        table(["#", "Type", "Time"], d.events.map((ev) => h("tr", {},
          h("td", {class: "num"}, ev.id), h("td", {}, ev.type), h("td", {}, fmtTime(ev.timestamp)))),
        {id: "state-events"})] : "");
  };

  const drawHistory = async () => {
    const history = await api(base + "/history" + (state.failedOnly ? "?failed_only=true" : ""));
    const start = history.events.length ? history.events[0].timestamp : 0;
    const rows = [];
    for (const ev of history.events) {
      const details = Object.entries(ev).find(([k]) => k.endsWith("EventDetails"));
      const shown = state.open.has(ev.id);
      const row = h("tr", {class: "event" + (ev.type.endsWith("Failed") ? " failed-event" : ""),
                           "data-event-id": ev.id, "data-type": ev.type,
                           onclick: () => { if (shown) state.open.delete(ev.id); else state.open.add(ev.id);
                                            drawHistory(); }},
        h("td", {class: "num"}, ev.id), h("td", {}, fmtTime(ev.timestamp)),
        h("td", {class: "num"}, "+" + (ev.timestamp - start).toFixed(3) + " s"),
        h("td", {}, ev.type), h("td", {}, ev.stateName || ""),
        h("td", {class: "toggle"}, details ? (shown ? "\u25be" : "\u25b8") : ""));
      rows.push(row);
      if (shown && details) {
        rows.push(h("tr", {class: "event-details"}, h("td", {colspan: 6}, h("pre", {}, pretty(details[1])))));
      }
    }
    put(clear(historyBox), history.events.length
      ? table(["#", "Time", "Elapsed", "Type", "State", ""], rows, {id: "history-table"})
      : h("p", {class: "muted", id: "history-empty"}, state.failedOnly ? "No failed events." : "No events yet."));
  };

  const refresh = async () => {
    const [e, g] = await Promise.all([api(base), api(base + "/graph")]);
    drawHeader(e);
    // Redraw only what changed: a long history is not rebuilt every second while nothing happens.
    const changed = g.events !== state.seenEvents || g.status !== state.status;
    state.seenEvents = g.events;
    state.status = g.status;
    if (changed || !graphBox.firstChild) {
      panZoom(graphBox, renderGraph(graphBox, g.graph, selectState, state.selected), view);
      graphBox.setAttribute("data-execution-status", g.status);
      await Promise.all([drawHistory(), drawDetail()]);
    }
    // Both answers must be final: they are fetched side by side and may straddle the execution's end.
    return e.status === "RUNNING" || g.status === "RUNNING";
  };
  // Poll while the execution runs: the graph re-colours itself as states are entered and left. A failed
  // poll (server busy, restarted) is shown and retried; only the first load's failure ends the page.
  const trouble = h("p", {class: "error hidden", role: "status", id: "poll-error"});
  root.insertBefore(trouble, root.firstChild);
  let running;
  try {
    running = await refresh();
  } catch (e) {  // an unknown name (a mistyped or stale link): say so, not an empty graph and history
    if (live.alive()) {
      put(clear(root), h("h1", {}, name), errorBox(e),
          h("p", {}, h("a", {href: "#/executions", id: "back-to-executions"}, "\u2190 All executions")));
    }
    return;
  }
  while (live.alive() && running) {
    await live.sleep(POLL_MS);
    try {
      running = await refresh();
      trouble.classList.add("hidden");
    } catch (e) {
      clear(trouble).appendChild(document.createTextNode("Update failed, retrying: " + e.message));
      trouble.classList.remove("hidden");
    }
  }
}

// ---- Batches -----------------------------------------------------------------------------------
const BATCH_PAGE = 20;

async function batchesView(root, params, info) {
  const status = params.get("status") || "";
  const offset = Number(params.get("offset") || 0);
  const go = (changes) => {
    const next = new URLSearchParams({status: status, offset: String(offset)});
    for (const [k, v] of Object.entries(changes)) next.set(k, v);
    for (const [k, v] of [...next.entries()]) if (!v || v === "0") next.delete(k);
    location.hash = "#/batches" + (next.toString() ? "?" + next.toString() : "");
  };
  const query = new URLSearchParams({limit: String(BATCH_PAGE), offset: String(offset)});
  if (status) query.set("status", status);
  const data = await api("/api/batches?" + query.toString());
  const countRows = Object.entries(data.items).map(([kind, counts]) => h("tr", {},
    h("td", {}, kind), Object.values(counts).map((n) => h("td", {class: "num"}, n))));
  const statuses = Object.keys(Object.values(data.items)[0] || {});
  const rows = data.batches.map((b) => h("tr", {"data-batch": b.batch_id},
    h("td", {class: "mono", title: b.batch_id}, b.batch_id.slice(0, 8)), h("td", {}, b.batch_type),
    h("td", {}, badge(b.status)),
    h("td", {}, b.provider_status || ""), h("td", {class: "num"}, b.item_count),
    h("td", {class: "num"}, b.tokens === undefined || b.tokens === null ? "" : b.tokens),
    h("td", {class: "num"}, b.billed_tokens === undefined || b.billed_tokens === null ? "" : b.billed_tokens),
    h("td", {}, fmtTime(b.updated_at || b.submitted_at)), h("td", {class: "wrap"}, b.last_error || ""),
    info.actions_allowed ? h("td", {}, h("button", {class: "action", onclick: async () => {
      const to = window.prompt("Reset batch " + b.batch_id + " to which status?", "PENDING");
      if (!to) return;
      try { await action("/api/actions/reset-batch", {batch_id: b.batch_id, status: to}); route(); }
      catch (e) { showActionError(root, e); }
    }}, "Reset")) : ""));
  put(root, h("h1", {}, "Batches"),
    h("h2", {}, "Items by embedding status"),
    table(["Kind", ...statuses], countRows, {id: "item-counts"}),
    h("h2", {}, "Batch summaries"),
    h("div", {class: "controls"}, select("filter-batch-status", "Status", BATCH_STATUSES, status,
      (ev) => go({status: ev.target.value, offset: ""}))),
    rows.length ? table(["Batch", "Type", "Status", "Provider status", "Items", "Tokens", "Billed tokens", "Updated",
                         "Last error", ...(info.actions_allowed ? [""] : [])], rows, {id: "batches-table"})
                : h("p", {class: "muted"}, "No batches."),
    h("div", {class: "pager", id: "batches-pager"},
      h("button", {id: "batches-earlier", disabled: offset === 0,
                   onclick: () => go({offset: String(Math.max(0, offset - BATCH_PAGE))})}, "\u2190 Earlier"),
      h("span", {}, rows.length ? (offset + 1) + "\u2013" + (offset + rows.length) + " of " + data.count : ""),
      h("button", {id: "batches-later", disabled: data.next_offset === null,
                   onclick: () => go({offset: String(data.next_offset)})}, "Later \u2192")));
}

// ---- Snapshots -----------------------------------------------------------------------------------
async function snapshotsView(root, params, info) {
  const data = await api("/api/snapshots");
  put(root, h("h1", {}, "Snapshots"));
  for (const [database, db] of Object.entries(data.databases)) {
    const kind = database.replace(/s$/, "");
    const rows = db.versions.map((v) => h("tr", {class: v.current ? "current" : "", "data-version": v.version},
      h("td", {}, v.current ? h("strong", {}, "\u25cf current") : ""),
      h("td", {class: "mono", title: v.version}, v.short),  // short as everywhere, the whole id on hover
      h("td", {class: "num"}, v.count), h("td", {}, v.model), h("td", {class: "num"}, v.dimensions),
      h("td", {}, fmtTime(v.published_at)),
      h("td", {class: "mono", title: v.parent_version || ""}, v.parent_short || ""),
      info.actions_allowed && !v.current ? h("td", {}, h("button", {class: "action", onclick: async () => {
        if (!window.confirm("Roll " + database + " back to " + v.version + "?")) return;
        try { await action("/api/actions/rollback", {kind: kind, version: v.version}); route(); }
        catch (e) { showActionError(root, e); }
      }}, "Roll back")) : (info.actions_allowed ? h("td", {}) : "")));
    put(root, h("h2", {}, database),
      rows.length ? table(["", "Version", "Records", "Model", "Dims", "Published", "Parent",
                           ...(info.actions_allowed ? [""] : [])], rows, {id: "snapshots-" + database})
                  : h("p", {class: "muted"}, "Nothing published yet."));
  }
}

// ---- Query ---------------------------------------------------------------------------------------
// #/query?kind=line&text=TOTAL&n=10 runs the search when opened, and a search puts its terms in the
// address, so results are linkable.
async function queryView(root, params) {
  const results = h("div", {id: "query-results"});
  const text = h("input", {id: "query-text", type: "search", placeholder: "e.g. total amount",
                           value: params.get("text") || "", required: true, size: 40});
  const kind = h("select", {id: "query-kind"}, ["line", "word"].map((k) =>
    h("option", {value: k, selected: params.get("kind") === k}, k + "s")));
  const n = h("input", {id: "query-n", type: "number", min: 1, max: 50, value: params.get("n") || 10});
  const form = h("form", {class: "controls", onsubmit: async (ev) => {
    ev.preventDefault();
    put(clear(results), h("p", {class: "muted"}, "Searching\u2026"));
    const q = new URLSearchParams({kind: kind.value, text: text.value, n: n.value});
    history.replaceState(null, "", "#/query?" + q.toString());  // no hashchange: no re-render
    try {
      const found = await api("/api/query?" + q.toString());
      const word = kind.value === "word";
      put(clear(results), found.results.length
        ? [h("p", {class: "muted", id: "query-caption", title: "version " + found.version},
             found.kind + "s nearest to \u201c" + found.text + "\u201d (version " +
             found.version_short + ", " + found.model + ")"),
           table(["#", "Distance", "Text", "Receipt", "Receipt number", "Line", ...(word ? ["Word"] : []), "Merchant"],
            found.results.map((r, i) => h("tr", {class: "hit", title: r.id, "data-id": r.id},
              h("td", {class: "num"}, i + 1), h("td", {class: "num"}, r.distance.toFixed(4)),
              h("td", {class: "doc"}, r.document), h("td", {class: "nowrap"}, r.metadata.image_id ?? ""),
              h("td", {class: "num"}, r.metadata.receipt_id ?? ""), h("td", {class: "num"}, r.metadata.line_id ?? ""),
              word ? h("td", {class: "num"}, r.metadata.word_id ?? "") : "",
              h("td", {}, r.metadata.merchant_name || ""))), {id: "query-table", class: "compact"})]
        : h("p", {class: "muted"}, "No hits."));
    } catch (e) { put(clear(results), errorBox(e)); }
  }}, h("label", {}, "Search ", kind, " for "), text, h("label", {}, " results ", n),
     h("button", {id: "query-submit", type: "submit"}, "Search"));
  put(root, h("h1", {}, "Query the published snapshot"), form, results);
  if (text.value.trim()) form.requestSubmit();
}
