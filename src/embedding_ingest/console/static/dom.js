// DOM and API helpers shared by the console's views.
// Every piece of data reaches the page as a text node or an attribute value, never as markup: an
// execution input or OCR text holding HTML or <script> is shown as the characters it is.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

// h("td", {class: "x", onclick: fn}, "text", child, ...) -> element. Strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

// The same for SVG elements.
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Times: the API speaks epoch seconds, as the Step Functions JSON protocol does.
function fmtTime(epoch) {
  if (epoch === undefined || epoch === null) return "";
  return new Date(epoch * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const m = Math.floor(seconds / 60);
  return m + " min " + Math.round(seconds - 60 * m) + " s";
}

// A JSON string (as Step Functions keeps input/output) pretty-printed when it parses.
function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") return JSON.stringify(value, null, 2);
  try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
}

function badge(status) {
  const word = String(status || "").toLowerCase();
  return h("span", {class: "badge status-" + word.replace(/[^a-z_]/g, "")}, word.replace("_", " "));
}

class ApiError extends Error {}

async function api(path, options) {
  const response = await fetch(path, Object.assign({headers: {"Accept": "application/json"}}, options));
  let body;
  try { body = await response.json(); } catch (e) { body = {message: response.statusText}; }
  if (!response.ok) throw new ApiError((body && body.message) || ("HTTP " + response.status));
  return body;
}

// Actions carry the start-up token in a header (never a cookie), so another site cannot forge them.
async function action(path, payload) {
  const token = document.getElementById("token").value.trim();
  return api(path, {method: "POST", body: JSON.stringify(payload),
                    headers: {"Content-Type": "application/json", "X-Console-Token": token}});
}

function errorBox(error) {
  return h("p", {class: "error", role: "alert"}, String(error && error.message ? error.message : error));
}

// An action's failure (no token, a refused reset...) shown where it is seen: under the page's title,
// not below a long table; it replaces the previous one.
function showActionError(root, error) {
  const previous = root.querySelector(".action-error");
  if (previous) previous.remove();
  const box = errorBox(error);
  box.classList.add("action-error");
  box.id = "action-error";
  root.insertBefore(box, root.firstElementChild ? root.firstElementChild.nextSibling : null);
  box.scrollIntoView({block: "nearest"});
}

function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// Appends children (strings as text, arrays flattened, empty values skipped); returns `el`.
function put(el, ...children) {
  appendAll(el, children);
  return el;
}
