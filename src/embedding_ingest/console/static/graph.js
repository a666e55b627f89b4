// The state machine graph: laid out by dagre (vendored), drawn as SVG. A Map state is a box holding
// its ItemProcessor's own graph (laid out first, so the outer layout knows the box's size); a Parallel
// state holds its branches side by side.
"use strict";

const STATUS_TEXT = {succeeded: "Succeeded", failed: "Failed", caught: "Caught error",
                     in_progress: "In progress", aborted: "Aborted", not_entered: "Not entered"};
const PSEUDO = {__start__: "Start", __end__: "End"};
const PAD = 14, HEADER = 34, GAP = 18;

let measureCtx = null;
function textWidth(text, font) {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = font || "13px sans-serif";
  return measureCtx.measureText(text).width;
}

function countsLine(node) {
  if (node.map) {
    const m = node.map;
    return m.iterations + " iterations: " + m.iterations_succeeded + " succeeded, " +
           m.iterations_failed + " failed" + (m.iterations_aborted ? ", " + m.iterations_aborted + " aborted" : "");
  }
  const c = node.counts || {};
  if ((node.visits || 0) <= 1) return node.type;
  const parts = [node.visits + " runs"];
  for (const key of ["succeeded", "caught", "failed", "in_progress", "aborted"]) {
    if (c[key]) parts.push(c[key] + " " + STATUS_TEXT[key].toLowerCase());
  }
  return node.type + " \u00b7 " + parts.join(", ");
}

// Lays out one (sub)graph; returns {graph: dagre graph, width, height}.
function layoutProgram(program) {
  const g = new dagre.graphlib.Graph({multigraph: true});
  g.setGraph({rankdir: "TB", nodesep: 28, ranksep: 36, edgesep: 12, marginx: 8, marginy: 8});
  for (const node of program.nodes) {
    let width, height, inner = null, branches = null;
    if (PSEUDO[node.name]) {
      width = height = 30;
    } else if (node.children) {
      inner = layoutProgram(node.children);
      width = Math.max(inner.width, textWidth(countsLine(node), "12px sans-serif") + 20) + 2 * PAD;
      height = inner.height + HEADER + PAD;
    } else if (node.branches) {
      branches = node.branches.map(layoutProgram);
      width = branches.reduce((sum, b) => sum + b.width, 0) + GAP * (branches.length - 1) + 2 * PAD;
      height = Math.max(0, ...branches.map((b) => b.height)) + HEADER + PAD;
      width = Math.max(width, textWidth(node.name, "bold 13px sans-serif") + 40);
    } else {
      width = Math.max(150, textWidth(node.name, "bold 13px sans-serif") + 28,
                       textWidth(countsLine(node), "12px sans-serif") + 28);
      height = 44;
    }
    g.setNode(node.name, {width: width, height: height, node: node, inner: inner, branches: branches});
  }
  program.edges.forEach((edge, i) => {
    if (!g.hasNode(edge.from) || !g.hasNode(edge.to)) return;
    // Catch edges are told apart by their dashed colour (their ErrorEquals shows on hover): labelling
    // every one would double the graph's width.
    const label = edge.kind === "catch" ? "" : (edge.label || "");
    g.setEdge(edge.from, edge.to, {edge: edge, label: label,
                                   width: label ? Math.min(220, textWidth(label, "11px sans-serif") + 8) : 0,
                                   height: label ? 16 : 0, labelpos: "c"}, "e" + i);
  });
  dagre.layout(g);
  const size = g.graph();
  return {graph: g, width: size.width || 0, height: size.height || 0};
}

function truncate(text, pixels) {
  if (textWidth(text, "11px sans-serif") <= pixels) return text;
  let cut = text;
  while (cut.length > 1 && textWidth(cut + "\u2026", "11px sans-serif") > pixels) cut = cut.slice(0, -1);
  return cut + "\u2026";
}

function drawEdges(layout, parent) {
  const g = layout.graph;
  for (const e of g.edges()) {
    const info = g.edge(e);
    const points = info.points || [];
    if (!points.length) continue;
    const d = points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1)).join(" ");
    parent.appendChild(s("path", {d: d, class: "edge edge-" + info.edge.kind, "marker-end": "url(#arrow)"},
                         info.edge.label ? s("title", {}, info.edge.label) : null));
    if (info.label) {
      const shown = truncate(info.label, 212);
      parent.appendChild(s("g", {class: "edge-label"},
        s("rect", {x: info.x - info.width / 2, y: info.y - 8, width: info.width, height: 16, rx: 3}),
        s("text", {x: info.x, y: info.y + 4, "text-anchor": "middle"}, shown,
          s("title", {}, info.label))));
    }
  }
}

function drawNode(info, parent, onSelect, selected) {
  const node = info.node;
  const x = info.x - info.width / 2, y = info.y - info.height / 2;
  if (PSEUDO[node.name]) {
    parent.appendChild(s("g", {class: "pseudo status-" + node.status},
      s("circle", {cx: info.x, cy: info.y, r: 15}),
      s("text", {x: info.x, y: info.y + 4, "text-anchor": "middle"}, PSEUDO[node.name] === "Start" ? "\u25b6" : "\u25a0")));
    return;
  }
  const group = s("g", {class: "state status-" + node.status + (node.name === selected ? " selected" : "") +
                               (info.inner || info.branches ? " container" : ""),
                        "data-state": node.name, "data-status": node.status, "data-type": node.type,
                        tabindex: 0, role: "button",
                        "aria-label": node.name + ": " + STATUS_TEXT[node.status]});
  group.addEventListener("click", (ev) => { ev.stopPropagation(); onSelect(node.name); });
  group.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onSelect(node.name); });
  group.appendChild(s("title", {}, node.name + " (" + node.type + "): " + STATUS_TEXT[node.status] +
                                   (node.comment ? "\n" + node.comment : "")));
  group.appendChild(s("rect", {class: "box", x: x, y: y, width: info.width, height: info.height, rx: 7}));
  const container = info.inner || info.branches;
  const titleY = container ? y + 15 : info.y - 3;
  const anchorX = container ? x + PAD : info.x;
  const anchor = container ? "start" : "middle";
  group.appendChild(s("text", {class: "name", x: anchorX, y: titleY, "text-anchor": anchor}, node.name));
  group.appendChild(s("text", {class: "sub", x: anchorX, y: titleY + 14, "text-anchor": anchor},
                      container && node.type === "Parallel" ? "Parallel" : countsLine(node)));
  parent.appendChild(group);
  if (info.inner) {
    const inner = s("g", {transform: "translate(" + (x + PAD) + "," + (y + HEADER) + ")"});
    drawLayout(info.inner, inner, onSelect, selected);
    parent.appendChild(inner);
  }
  if (info.branches) {
    let offset = x + PAD;
    for (const branch of info.branches) {
      const inner = s("g", {transform: "translate(" + offset + "," + (y + HEADER) + ")"});
      drawLayout(branch, inner, onSelect, selected);
      parent.appendChild(inner);
      offset += branch.width + GAP;
    }
  }
}

function drawLayout(layout, parent, onSelect, selected) {
  drawEdges(layout, parent);
  for (const name of layout.graph.nodes()) drawNode(layout.graph.node(name), parent, onSelect, selected);
}

// Draws `graph` (the API's graph model) into `container`; returns the <svg>.
function renderGraph(container, graph, onSelect, selected) {
  clear(container);
  if (!graph.nodes.length) {
    container.appendChild(h("p", {class: "muted", id: "graph-note"},
                            graph.note || "The definition of this execution is not known."));
    return null;
  }
  const layout = layoutProgram(graph);
  const svg = s("svg", {id: "graph-svg", width: Math.ceil(layout.width), height: Math.ceil(layout.height),
                        viewBox: "0 0 " + Math.ceil(layout.width) + " " + Math.ceil(layout.height),
                        role: "img", "aria-label": "State machine graph"},
    s("defs", {}, s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
                               markerHeight: 7, orient: "auto-start-reverse"},
                    s("path", {d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead"}))));
  drawLayout(layout, svg, onSelect, selected);
  container.appendChild(svg);
  return svg;
}

function legend() {
  return h("ul", {class: "legend", "aria-label": "Legend"},
    Object.entries(STATUS_TEXT).map(([status, text]) =>
      h("li", {}, h("span", {class: "swatch status-" + status}), text)));
}

// Pan and zoom over the drawn graph with Panzoom (vendored): the wheel zooms about the pointer, a drag
// pans, buttons zoom in, out and fit. `view` outlives redraws of a running execution's graph, so the
// place the user zoomed to stays; until they move it, each redraw fits the graph to the pane.
function panZoom(pane, svg, view) {
  if (view.pz) view.pz.destroy();
  view.pz = null;
  if (!svg) return;
  if (!view.moved) Object.assign(view, fitted(pane, svg));
  // Panzoom applies startX/startY itself a moment after it starts (and would undo a pan made now).
  const pz = Panzoom(svg, {canvas: true, maxScale: 4, minScale: 0.05, step: 0.25, cursor: "grab",
                           startScale: view.scale, startX: view.x, startY: view.y});
  view.pz = pz;
  pane.__panzoom = pz;  // for the browser tests
  svg.addEventListener("panzoomchange", (ev) => {
    view.scale = ev.detail.scale; view.x = ev.detail.x; view.y = ev.detail.y;
  });
  svg.addEventListener("panzoomstart", () => { view.moved = true; });
}

// Scale and pan that show the whole graph centred in the pane (never enlarged past 1.5x: a small graph
// stays readable). Panzoom scales an <svg> about its centre: scale(s) translate(x, y) puts its top-left
// corner at W/2 (1 - s) + s x, hence x = (paneW - W) / 2s to centre it (the same for y).
function fitted(pane, svg) {
  const width = svg.width.baseVal.value, height = svg.height.baseVal.value;
  const scale = Math.max(0.05, Math.min((pane.clientWidth - 16) / width, (pane.clientHeight - 16) / height, 1.5));
  return {scale: scale, x: (pane.clientWidth - width) / 2 / scale, y: (pane.clientHeight - height) / 2 / scale};
}

function fitGraph(pane, svg, view) {
  if (!view.pz) return;
  const fit = fitted(pane, svg);
  view.pz.zoom(fit.scale, {animate: false, force: true});
  view.pz.pan(fit.x, fit.y, {animate: false, force: true});
  view.moved = false;
}
