// Hash router: #/executions, #/execution/NAME, #/dashboard, #/batches, #/snapshots, #/query. Navigating away ends
// the previous page's polling (its `live` object stops being alive).
"use strict";

let info = {backend: "?", actions_allowed: false};
let generation = 0;

function liveFor(mine) {
  return {
    alive: () => mine === generation,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

async function route() {
  const mine = ++generation;
  const live = liveFor(mine);
  const root = clear(document.getElementById("view"));
  const hash = location.hash.replace(/^#\/?/, "") || "executions";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  const [page, ...rest] = path.split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("data-nav") === (page === "execution" ? "executions" : page));
  }
  try {
    if (page === "execution" && rest.length) await executionView(root, decodeURIComponent(rest.join("/")), info, live);
    else if (page === "batches") await batchesView(root, params, info, live);
    else if (page === "snapshots") await snapshotsView(root, params, info, live);
    else if (page === "query") await queryView(root, params, info, live);
    else if (page === "dashboard") await dashboardView(root, params, info, live);
    else await executionsView(root, params, info, live);
  } catch (e) {
    if (live.alive()) root.appendChild(errorBox(e));
  }
}

async function start() {
  try { info = await api("/api/info"); } catch (e) { /* shown by the first view's own error */ }
  const mode = document.getElementById("mode");
  mode.textContent = info.backend + " backend \u00b7 " + (info.actions_allowed ? "actions allowed" : "read-only");
  mode.classList.add(info.actions_allowed ? "mode-actions" : "mode-readonly");
  if (info.actions_allowed) {
    const tokenBox = document.getElementById("token-box");
    const token = document.getElementById("token");
    tokenBox.classList.remove("hidden");
    token.value = sessionStorage.getItem("console-token") || "";
    token.addEventListener("change", () => sessionStorage.setItem("console-token", token.value.trim()));
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
