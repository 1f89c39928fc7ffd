// stoichgen's page: one file, no build step. Talks to GET /api/models and POST /api/generate.
"use strict";

const STATES = ["", "allowed", "required", "excluded"]; // a click moves an element to the next one
const FIELDS = ["model", "target", "target_range", "n", "method", "balance", "oxidation", "max_elements", "objective", "seed",
  "elements", "require", "exclude"];
// the results table: [column, heading, how to show a row's value]
const SHOWN = [
  ["rank", "rank"],
  ["target", "target"],
  ["formula", "formula"],
  ["predicted_property", "predicted ± uncertainty"],
  ["p_in_range", "P(in range)"],
  ["e_above_hull", "e above hull (eV/atom)"],
  ["p_stable", "P(at or below hull)"],
  ["oxidation_states", "oxidation states"],
  ["oxidation_probability", "their likelihood"],
  ["charge_neutral", "charge neutral"],
  ["smact_valid", "SMACT valid"],
  ["novel", "novel (no known compound)"],
  ["not_in_training", "not in training"],
  ["nearest_formula", "nearest known"],
  ["nearest_property", "nearest's property"],
];

const page = { catalog: null, model: null, states: {}, result: null, busy: false, sort: null };
const $ = (id) => document.getElementById(id);

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  return String(value);
}

// --- the model and the periodic table -------------------------------------------------------------

function drawTable() {
  const grid = $("periodic-table");
  grid.textContent = "";
  const known = new Set(page.model.vocabulary);
  for (const cell of page.catalog.elements) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = cell.symbol;
    button.title = `${cell.name} (Z = ${cell.Z})`;
    button.dataset.symbol = cell.symbol;
    button.style.gridRow = cell.row;
    button.style.gridColumn = cell.column;
    button.className = "element";
    if (!known.has(cell.symbol)) {
      button.classList.add("unknown");
      button.disabled = true;
      button.title += ": not known to this model";
    } else {
      const state = page.states[cell.symbol] || "";
      if (state) button.classList.add(state);
      button.dataset.state = state;
      button.addEventListener("click", () => cycle(button));
    }
    grid.appendChild(button);
  }
}

function cycle(button) {
  const symbol = button.dataset.symbol;
  const next = STATES[(STATES.indexOf(page.states[symbol] || "") + 1) % STATES.length];
  if (next) page.states[symbol] = next; else delete page.states[symbol];
  button.classList.remove(...STATES.filter(Boolean));
  if (next) button.classList.add(next);
  button.dataset.state = next;
  clearErrors(["elements", "require", "exclude"]);
}

function chooseModel(name) {
  page.model = page.catalog.models.find((m) => m.name === name);
  const m = page.model;
  const known = new Set(m.vocabulary);
  for (const symbol of Object.keys(page.states)) if (!known.has(symbol)) delete page.states[symbol];
  $("model-info").textContent = `${m.kind} on ${m.representation}, trained on ${m.data}`;
  $("property-name").textContent = `(${m.property})`;
  $("target-range").textContent = `training range ${m.range[0].toFixed(2)} to ${m.range[1].toFixed(2)}`;
  for (const option of $("method").options) option.disabled = !m.methods.includes(option.value);
  if (!m.methods.includes($("method").value)) $("method").value = m.methods[0];
  // "range" is the target objective asked as an interval (target_range)
  for (const option of $("objective").options) {
    option.disabled = !m.objectives.includes(option.value === "range" ? "target" : option.value);
  }
  if (!m.objectives.includes($("objective").value)) $("objective").value = "target";
  drawTable();
  syncFields();
}

function syncFields() {
  const stability = $("objective").value === "stability";
  const range = $("objective").value === "range";
  $("range-field").hidden = !range;
  $("target").disabled = stability || range;
  $("method").disabled = stability;
  if (stability) $("method").value = "guided";
  $("balance").disabled = $("method").value !== "paper";
  checkTarget();
}

function checkTarget() {
  const warning = $("target-warning");
  warning.textContent = "";
  const text = $("target").value.trim();
  if ($("objective").value !== "target" || text === "") return;
  const value = Number(text);
  if (Number.isFinite(value) && (value < page.model.range[0] || value > page.model.range[1])) {
    warning.textContent = "Outside the training range: this is extrapolation, expect candidates off target.";
  }
}

// --- errors ----------------------------------------------------------------------------------------

function clearErrors(fields = [...FIELDS, "general"]) {
  for (const field of fields) {
    const slot = $(`error-${field}`);
    if (slot) slot.textContent = "";
    const input = $(field);
    if (input) input.classList.remove("invalid");
  }
}

function showError(message, field) {
  const slot = (field && $(`error-${field}`)) || $("error-general");
  slot.textContent = message;
  const input = field && $(field);
  if (input) { input.classList.add("invalid"); input.focus(); }
}

// --- the request -----------------------------------------------------------------------------------

function numberOrText(text) {
  const value = Number(text);
  return text.trim() !== "" && Number.isFinite(value) ? value : text; // the server names what is wrong
}

function buildRequest() {
  const marked = (state) => Object.keys(page.states).filter((s) => page.states[s] === state);
  const allowed = marked("allowed"), required = marked("required"), excluded = marked("excluded");
  const body = {
    model: page.model.name,
    objective: $("objective").value === "range" ? "target" : $("objective").value,
    method: $("method").value,
    n: numberOrText($("n").value),
    seed: numberOrText($("seed").value),
  };
  const target = $("target").value.trim();
  if ($("objective").value === "range") {
    const side = (id) => ($(id).value.trim() === "" ? null : numberOrText($(id).value));
    body.target_range = [side("target_min"), side("target_max")];
  } else if (body.objective === "target") body.target = numberOrText(target);  // stability: no target
  if (body.method === "paper") body.balance = $("balance").value;
  if ($("oxidation").value !== "") body.oxidation = $("oxidation").value;
  if ($("max_elements").value.trim() !== "") body.max_elements = numberOrText($("max_elements").value);
  if (allowed.length) body.elements = [...allowed, ...required];
  if (required.length) body.require = required;
  if (excluded.length) body.exclude = excluded;
  return body;
}

async function generate(event) {
  event.preventDefault();
  if (page.busy) return; // one request at a time from this page
  page.busy = true;
  clearErrors();
  const button = $("generate");
  button.disabled = true;
  $("status").className = "busy";
  $("status").textContent = "Generating…";
  const started = performance.now();
  try {
    const answer = await fetch("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(buildRequest()),
    });
    const payload = await answer.json().catch(() => ({ error: `HTTP ${answer.status}`, field: null }));
    if (!answer.ok) {
      showError(payload.error, payload.field);
      $("status").textContent = "";
      return;
    }
    page.result = payload;
    page.sort = null;
    showResults();
    $("status").textContent = `${payload.rows.length} candidates in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (err) {
    showError(`no answer from the server (${err})`, null);
    $("status").textContent = "";
  } finally {
    page.busy = false;
    button.disabled = false;
    $("status").classList.remove("busy");
  }
}

// --- the results -----------------------------------------------------------------------------------

function showResults() {
  const r = page.result;
  $("results").hidden = false;
  const c = r.counts;
  const parts = [`${c.rows} of ${c.requested} requested`];
  for (const [key, words] of [["charge_neutral", "charge neutral"], ["smact_valid", "SMACT-valid"],
    ["novel", "novel"], ["not_in_training", "not in training"], ["below_or_on_hull", "at or below the known hull"]]) {
    if (key in c) parts.push(`${c[key]} ${words}`);
  }
  $("summary").textContent = parts.join(", ");
  const list = $("warnings");
  list.textContent = "";
  for (const text of r.warnings) {
    const item = document.createElement("li");
    item.textContent = text;
    list.appendChild(item);
  }
  drawRows();
  drawHistogram();
  const hull = $("hull");
  if (r.hull) {
    hull.hidden = false;
    const layout = Object.assign({}, r.hull.layout, { width: 520, height: 380, margin: { l: 30, r: 30, t: 30, b: 30 } });
    Plotly.newPlot(hull, r.hull.data, layout, { displaylogo: false });
  } else {
    hull.hidden = true;
    Plotly.purge(hull);
  }
}

function shownColumns() {
  const columns = new Set(page.result.columns);
  const multiTarget = page.result.targets.length > 1;
  const ranged = page.result.rows.some((row) => row.p_in_range !== null && row.p_in_range !== undefined);
  return SHOWN.filter(([name]) => columns.has(name) && (name !== "target" || multiTarget)
    && (name !== "p_in_range" || ranged));
}

function cellText(row, name) {
  if (name === "predicted_property" && row.uncertainty !== undefined && row.predicted_property !== null) {
    return `${fmt(row.predicted_property)} ± ${fmt(row.uncertainty)}`;
  }
  if (name === "e_above_hull" && row.e_above_hull !== null && row.e_above_hull_uncertainty !== undefined) {
    return `${fmt(row.e_above_hull)} ± ${fmt(row.e_above_hull_uncertainty)}`;
  }
  return fmt(row[name]);
}

function drawRows() {
  const shown = shownColumns();
  const head = document.createElement("tr");
  for (const [name, heading] of shown) {
    const th = document.createElement("th");
    th.textContent = heading;
    th.dataset.column = name;
    if (page.sort && page.sort.column === name) th.setAttribute("aria-sort", page.sort.ascending ? "ascending" : "descending");
    th.addEventListener("click", () => sortBy(name));
    head.appendChild(th);
  }
  const thead = document.querySelector("#results-table thead");
  thead.textContent = "";
  thead.appendChild(head);
  const tbody = document.querySelector("#results-table tbody");
  tbody.textContent = "";
  for (const row of sortedRows()) {
    const tr = document.createElement("tr");
    for (const [name] of shown) {
      const td = document.createElement("td");
      td.textContent = cellText(row, name);
      if (typeof row[name] === "string") td.className = "text";
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
}

function sortedRows() {
  const rows = [...page.result.rows];
  if (!page.sort) return rows;
  const { column, ascending } = page.sort;
  const key = (row) => row[column];
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1; // missing values last either way
    if (y === null || y === undefined) return -1;
    const order = typeof x === "string" ? x.localeCompare(y) : (x < y ? -1 : 1);
    return ascending ? order : -order;
  });
  return rows;
}

function sortBy(column) {
  const ascending = !(page.sort && page.sort.column === column && page.sort.ascending);
  page.sort = { column, ascending };
  drawRows();
}

function drawHistogram() {
  const r = page.result;
  const values = r.rows.map((row) => row.predicted_property).filter((v) => v !== null);
  const shapes = r.targets.map((t) => ({
    type: "line", x0: t, x1: t, yref: "paper", y0: 0, y1: 1, line: { color: "crimson", width: 2, dash: "dash" },
  }));
  const annotations = r.targets.map((t) => ({ x: t, yref: "paper", y: 1.04, text: `target ${t}`, showarrow: false }));
  Plotly.newPlot("histogram", [{ type: "histogram", x: values, marker: { color: "#2457c5" }, name: "predicted" }], {
    title: { text: `Predicted ${r.property} of the candidates`, font: { size: 14 } },
    xaxis: { title: { text: r.property } }, yaxis: { title: { text: "candidates" } },
    shapes, annotations, width: 520, height: 380, margin: { l: 50, r: 20, t: 70, b: 50 }, bargap: 0.05,
  }, { displaylogo: false });
}

// --- downloads -------------------------------------------------------------------------------------

function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "boolean") return value ? "True" : "False";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function downloadCsv() {
  const { columns, rows } = page.result;
  const lines = [columns.join(","), ...rows.map((row) => columns.map((c) => csvCell(row[c])).join(","))];
  download("stoichgen-candidates.csv", lines.join("\n") + "\n", "text/csv");
}

function downloadJson() {
  const { model, property, targets, rows, warnings, counts } = page.result;
  download("stoichgen-candidates.json", JSON.stringify({ model, property, targets, rows, warnings, counts }, null, 1),
    "application/json");
}

// --- start -----------------------------------------------------------------------------------------

async function start() {
  const answer = await fetch("/api/models");
  page.catalog = await answer.json();
  const select = $("model");
  for (const m of page.catalog.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = `${m.name} (${m.property})`;
    select.appendChild(option);
  }
  $("n").max = page.catalog.limits.n;
  $("n").title = `at most ${page.catalog.limits.n} per request`;
  select.addEventListener("change", () => chooseModel(select.value));
  $("objective").addEventListener("change", syncFields);
  $("method").addEventListener("change", syncFields);
  $("target").addEventListener("input", checkTarget);
  $("clear-elements").addEventListener("click", () => { page.states = {}; drawTable(); });
  $("request").addEventListener("submit", generate);
  $("download-csv").addEventListener("click", downloadCsv);
  $("download-json").addEventListener("click", downloadJson);
  chooseModel(page.catalog.models[0].name);
  document.body.dataset.ready = "true";
}

start().catch((err) => showError(`could not load the models (${err})`, null));
