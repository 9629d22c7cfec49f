// The DeepLesion viewer page: plain JavaScript, no build step, nothing loaded from outside the server.
// Routes (in the URL's hash, so that every view is a link):
//   #/?split=test&type=liver&...           the lesion table with its filters and sorting
//   #/lesion/LINE?slice=N&window=LOW,HIGH  one lesion's series, scrolled to slice N, in that window
//   #/patient/N                            a patient's studies side by side, tracks, timeline
"use strict";

const $ = (selector) => document.querySelector(selector);
// Okabe-Ito colours, as the toolkit's overlays: RECIST long axis, short axis, box; predictions
const COLOURS = {
  long: "rgb(213,94,0)", short: "rgb(86,180,233)", box: "rgb(0,158,115)",
  hit: "rgb(0,114,178)", fp: "rgb(204,121,167)", duplicate: "rgb(150,150,150)", unevaluated: "rgb(150,150,150)",
  caliper: "rgb(240,228,66)",
};
const TRACK_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999999"];
const WINDOW_KEYS = { "2": [-175, 275], "3": [-1500, 500], "4": [-500, 1300] };
const PREFETCH = 3;

const state = {
  view: null, row: null, series: null, slice: null, window: null, overlays: true,
  showPredictions: true, threshold: 0.5, predictions: new Map(), image: null, caliper: null,
  drag: null, huTimer: null, imageCache: new Map(),
};

function pad(n) { return String(n).padStart(3, "0"); }
function sliceUrl(folder, n, window) { return `/api/slice/${folder}/${pad(n)}.png?window=${window[0]},${window[1]}`; }

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${url}`);
  return body;
}

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

function setHash(path, params, replace) {
  const query = params.toString();
  const hash = `#${path}${query ? "?" + query : ""}`;
  if (hash === location.hash) return;
  if (replace) history.replaceState(null, "", hash);
  else location.hash = hash;
}

function show(view) {
  for (const id of ["table-view", "slice-view", "patient-view"]) $(`#${id}`).hidden = id !== view;
  state.view = view;
}

// ---- the lesion table ---------------------------------------------------------------------------------
const table = { sort: "line", order: "asc", offset: 0, limit: 100 };

function tableParams() {
  const params = new URLSearchParams();
  for (const element of $("#filters").elements) if (element.name && element.value) params.set(element.name, element.value);
  if (table.sort !== "line") params.set("sort", table.sort);
  if (table.order !== "asc") params.set("order", table.order);
  if (table.offset) params.set("offset", table.offset);
  return params;
}

async function showTable(params) {
  show("table-view");
  $("#crumbs").textContent = "";
  for (const element of $("#filters").elements) if (element.name) element.value = params.get(element.name) || "";
  table.sort = params.get("sort") || "line";
  table.order = params.get("order") || "asc";
  table.offset = Number(params.get("offset") || 0);
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.className = th.dataset.sort === table.sort ? `sorted-${table.order}` : "";
  }
  const query = tableParams();
  query.set("limit", table.limit);
  let data;
  try {
    data = await getJson(`/api/lesions?${query}`);
  } catch (error) {
    $("#table-status").textContent = error.message;
    return;
  }
  const body = $("#lesions tbody");
  body.replaceChildren();
  for (const row of data.rows) {
    const tr = document.createElement("tr");
    const cells = [row.line, row.file_name, row.patient, row.study, row.split, row.type.replace("_", " "),
      row.long_mm.toFixed(1), row.short_mm.toFixed(1), row.noisy ? "yes" : "", row.predictions || ""];
    cells.forEach((value, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const a = document.createElement("a");
        a.href = `#/lesion/${row.line}`;
        a.textContent = value;
        td.append(a);
      } else td.textContent = value;
      if ([0, 2, 3, 6, 7, 9].includes(i)) td.className = "num";
      tr.append(td);
    });
    tr.dataset.line = row.line;
    body.append(tr);
  }
  const last = Math.min(data.offset + data.rows.length, data.total);
  $("#table-status").textContent = `${data.total} lesions`;
  $("#page").textContent = data.total ? `${data.offset + 1}-${last} of ${data.total}` : "no lesion matches";
  $("#prev").disabled = data.offset === 0;
  $("#next").disabled = last >= data.total;
}

$("#filters").addEventListener("input", () => { table.offset = 0; setHash("/", tableParams()); });
$("#filters").addEventListener("submit", (event) => event.preventDefault());
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    table.order = table.sort === th.dataset.sort && table.order === "asc" ? "desc" : "asc";
    table.sort = th.dataset.sort;
    table.offset = 0;
    setHash("/", tableParams());
  });
}
$("#lesions tbody").addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  if (tr && event.target.tagName !== "A") location.hash = `#/lesion/${tr.dataset.line}`;
});
$("#prev").addEventListener("click", () => { table.offset = Math.max(0, table.offset - table.limit); setHash("/", tableParams()); });
$("#next").addEventListener("click", () => { table.offset += table.limit; setHash("/", tableParams()); });

// ---- the slice view -----------------------------------------------------------------------------------
async function showLesion(line, params) {
  show("slice-view");
  $("#slice-error").textContent = "";
  let row;
  try {
    row = await getJson(`/api/lesion/${line}`);
    if (!state.series || state.series.folder !== row.folder) state.series = await getJson(`/api/series/${row.folder}`);
  } catch (error) {
    $("#slice-error").textContent = error.message;
    return;
  }
  state.row = row;
  const window = (params.get("window") || "").split(",").map(Number);
  state.window = window.length === 2 && window.every(Number.isFinite) && window[0] < window[1] ? window : row.window;
  const slice = Number(params.get("slice"));
  state.slice = Number.isInteger(slice) && slice > 0 ? slice : row.key_slice;
  state.caliper = null;
  $("#crumbs").innerHTML = "";
  const back = document.createElement("a");
  back.href = "#/";
  back.textContent = "lesions";
  $("#crumbs").append(back, ` / patient ${row.patient} / ${row.file_name}`);
  $("#title").textContent = `${row.file_name} (line ${row.line})`;
  $("#lesion-info").textContent =
    `${row.type.replace("_", " ")}, ${row.split}; RECIST ${row.long_mm.toFixed(1)} x ${row.short_mm.toFixed(1)} mm; ` +
    `spacing ${row.spacing[0].toFixed(3)} mm, interval ${row.spacing[2]} mm; DICOM window ${row.window.join(" to ")} HU` +
    (row.noisy ? "; possibly noisy" : "");
  $("#patient-link").href = `#/patient/${row.patient}`;
  for (const name of new Set(state.series.rows.map((r) => r.file_name))) loadPredictions(name);
  $("#canvas").focus();
  drawSlice();
}

async function loadPredictions(fileName) {
  if (state.predictions.has(fileName)) return;
  state.predictions.set(fileName, []);
  try {
    const data = await getJson(`/api/predictions/${fileName}`);
    state.predictions.set(fileName, data.predictions);
    $("#prediction-controls").hidden = !data.available;
    drawSlice();
  } catch (error) { /* a slice without predictions shows none */ }
}

function updateUrl() {
  const params = new URLSearchParams({ slice: state.slice, window: state.window.join(",") });
  setHash(`/lesion/${state.row.line}`, params, true);
}

function loadImage(url) {
  let image = state.imageCache.get(url);
  if (!image) {
    image = new Image();
    image.decoding = "async";
    image.src = url;
    state.imageCache.set(url, image);
    if (state.imageCache.size > 200) state.imageCache.delete(state.imageCache.keys().next().value);
  }
  return image;
}

function drawSlice() {
  if (state.view !== "slice-view" || !state.row) return;
  const { folder } = state.row;
  const slices = state.series.slices;
  const url = sliceUrl(folder, state.slice, state.window);
  const image = loadImage(url);
  $("#slice-number").textContent = state.slice;
  const position = slices.indexOf(state.slice);
  $("#slice-position").textContent = position >= 0
    ? `(${position + 1} of ${slices.length} on disk${state.slice === state.row.key_slice ? ", key slice" : ""})`
    : "(not on disk)";
  for (const button of document.querySelectorAll("#windows button")) {
    const value = button.dataset.window === "lesion" ? state.row.window : button.dataset.window.split(",").map(Number);
    button.classList.toggle("active", value[0] === state.window[0] && value[1] === state.window[1]);
  }
  $("#custom-window").elements.low.value = state.window[0];
  $("#custom-window").elements.high.value = state.window[1];
  updateUrl();
  const render = () => {
    if (url !== sliceUrl(folder, state.slice, state.window)) return; // scrolled on meanwhile
    state.image = image;
    paint();
  };
  if (image.complete && image.naturalWidth) render();
  else {
    image.onload = render;
    image.onerror = async () => {
      const response = await fetch(url);
      let message = `slice ${state.slice} cannot be shown`;
      try { message = (await response.json()).error; } catch (error) { /* not JSON */ }
      if (url !== sliceUrl(folder, state.slice, state.window)) return;
      state.imageCache.delete(url);
      state.image = null;
      $("#slice-error").textContent = message;
      paint();
    };
  }
  // prefetch the neighbours, so that scrolling shows them at once
  for (let step = 1; step <= PREFETCH; step++) {
    for (const n of [slices[position + step], slices[position - step]]) if (n !== undefined) loadImage(sliceUrl(folder, n, state.window));
  }
}

function paint() {
  const canvas = $("#canvas");
  const context = canvas.getContext("2d");
  const [width, height] = state.row.image_size;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  context.fillStyle = "#000";
  context.fillRect(0, 0, width, height);
  if (state.image) {
    $("#slice-error").textContent = "";
    context.drawImage(state.image, 0, 0);
  } else {
    context.fillStyle = "#888";
    context.font = "20px sans-serif";
    context.fillText(`slice ${state.slice}: not available`, 20, 40);
  }
  const onThisSlice = state.series.rows.filter((r) => r.key_slice === state.slice);
  if (state.overlays) for (const row of onThisSlice) drawLesion(context, row);
  if (state.showPredictions) {
    for (const name of new Set(onThisSlice.map((r) => r.file_name))) {
      for (const p of state.predictions.get(name) || []) if (p.score >= state.threshold) drawPrediction(context, p);
    }
  }
  drawScaleBar(context, width, height);
  if (state.caliper) drawCaliper(context);
}

function line(context, colour, width, points) {
  context.strokeStyle = colour;
  context.lineWidth = width;
  context.beginPath();
  context.moveTo(points[0][0] + 0.5, points[0][1] + 0.5);
  for (const [x, y] of points.slice(1)) context.lineTo(x + 0.5, y + 0.5);
  context.stroke();
}

function drawLesion(context, row) {
  const [x1, y1, x2, y2] = row.box;
  context.setLineDash([]);
  line(context, COLOURS.box, 2, [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]);
  const r = row.recist;
  line(context, COLOURS.long, 2, [r[0], r[1]]);
  line(context, COLOURS.short, 2, [r[2], r[3]]);
}

function drawPrediction(context, p) {
  const [x1, y1, x2, y2] = p.box;
  context.setLineDash(p.status === "hit" ? [] : [6, 4]);
  line(context, COLOURS[p.status], 2, [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]);
  context.setLineDash([]);
  context.fillStyle = COLOURS[p.status];
  context.font = "12px sans-serif";
  context.fillText(p.score.toFixed(2), x1, Math.max(12, y1 - 3));
}

function drawScaleBar(context, width, height) {
  const mmPerPixel = state.row.spacing[0];
  const mm = [100, 50, 20, 10, 5].find((m) => m / mmPerPixel <= width * 0.3) || 5;
  const pixels = mm / mmPerPixel;
  const y = height - 16;
  line(context, "#fff", 3, [[12, y], [12 + pixels, y]]);
  context.fillStyle = "#fff";
  context.font = "13px sans-serif";
  context.fillText(`${mm} mm`, 12, y - 6);
}

function drawCaliper(context) {
  const { start, end } = state.caliper;
  line(context, COLOURS.caliper, 1.5, [start, end]);
  const [sx, sy] = state.row.spacing;
  const mm = Math.hypot((end[0] - start[0]) * sx, (end[1] - start[1]) * sy);
  context.fillStyle = COLOURS.caliper;
  context.font = "13px sans-serif";
  context.fillText(`${mm.toFixed(1)} mm`, end[0] + 6, end[1]);
  $("#caliper").textContent = `caliper: ${mm.toFixed(1)} mm (click to clear)`;
}

function step(delta) {
  const slices = state.series.slices;
  if (!slices.length) return;
  let position = slices.indexOf(state.slice);
  if (position < 0) position = slices.findIndex((n) => n > state.slice);
  if (position < 0) position = slices.length - 1;
  state.slice = slices[Math.min(slices.length - 1, Math.max(0, position + delta))];
  drawSlice();
}

function setWindow(window) { state.window = window; drawSlice(); }

function pixelOf(event) {
  const canvas = $("#canvas");
  return [
    Math.floor((event.offsetX * canvas.width) / canvas.clientWidth),
    Math.floor((event.offsetY * canvas.height) / canvas.clientHeight),
  ];
}

$("#canvas").addEventListener("wheel", (event) => { event.preventDefault(); step(event.deltaY > 0 ? 1 : -1); }, { passive: false });
$("#canvas").addEventListener("mousedown", (event) => { state.drag = { start: pixelOf(event), moved: false }; });
$("#canvas").addEventListener("mousemove", (event) => {
  const [x, y] = pixelOf(event);
  if (state.drag) {
    state.drag.moved = true;
    state.caliper = { start: state.drag.start, end: [x, y] };
    paint();
  }
  clearTimeout(state.huTimer);
  state.huTimer = setTimeout(async () => {
    try {
      const data = await getJson(`/api/hu/${state.row.folder}/${pad(state.slice)}?x=${x}&y=${y}`);
      $("#cursor").textContent = `HU at (${x}, ${y}): ${data.hu}`;
    } catch (error) { $("#cursor").textContent = error.message; }
  }, 40);
});
window.addEventListener("mouseup", () => {
  if (state.drag && !state.drag.moved) { state.caliper = null; $("#caliper").textContent = "caliper: drag on the slice"; paint(); }
  state.drag = null;
});
document.addEventListener("keydown", (event) => {
  if (state.view !== "slice-view" || event.target.tagName === "INPUT") return;
  const keys = {
    ArrowDown: () => step(1), ArrowUp: () => step(-1), j: () => step(1), k: () => step(-1),
    PageDown: () => step(5), PageUp: () => step(-5),
    Home: () => { state.slice = state.row.key_slice; drawSlice(); },
    o: () => { state.overlays = !state.overlays; $("#show-overlays").checked = state.overlays; paint(); },
    1: () => setWindow(state.row.window),
  };
  const action = keys[event.key] || (WINDOW_KEYS[event.key] && (() => setWindow(WINDOW_KEYS[event.key])));
  if (action) { event.preventDefault(); action(); }
});
for (const button of document.querySelectorAll("#windows button")) {
  button.addEventListener("click", () => setWindow(button.dataset.window === "lesion" ? state.row.window : button.dataset.window.split(",").map(Number)));
}
$("#custom-window").addEventListener("submit", (event) => {
  event.preventDefault();
  const low = Number(event.target.elements.low.value), high = Number(event.target.elements.high.value);
  if (Number.isFinite(low) && Number.isFinite(high) && low < high) setWindow([low, high]);
  else $("#slice-error").textContent = "the window's low value must be below its high value";
});
$("#show-overlays").addEventListener("change", (event) => { state.overlays = event.target.checked; paint(); });
$("#show-predictions").addEventListener("change", (event) => { state.showPredictions = event.target.checked; paint(); });
$("#threshold").addEventListener("input", (event) => {
  state.threshold = Number(event.target.value);
  $("#threshold-value").textContent = state.threshold.toFixed(2);
  paint();
});

// ---- the patient page ---------------------------------------------------------------------------------
async function showPatient(number) {
  show("patient-view");
  $("#crumbs").innerHTML = "";
  const back = document.createElement("a");
  back.href = "#/";
  back.textContent = "lesions";
  $("#crumbs").append(back, ` / patient ${number}`);
  let data;
  try {
    data = await getJson(`/api/patient/${number}`);
  } catch (error) {
    $("#patient-title").textContent = error.message;
    return;
  }
  const colourOf = new Map(data.tracks.map((t, i) => [t.id, TRACK_COLOURS[i % TRACK_COLOURS.length]]));
  $("#patient-title").textContent = `Patient ${number}: ${data.studies.length} studies, ${data.tracks.length} tracked lesions`;
  const studies = $("#studies");
  studies.replaceChildren();
  for (const study of data.studies) {
    const column = document.createElement("div");
    column.className = "study";
    const heading = document.createElement("h4");
    heading.textContent = `Study ${study.study}`;
    column.append(heading);
    for (const series of study.series) {
      for (const row of series.rows) {
        const thumb = document.createElement("a");
        thumb.className = "thumb";
        thumb.href = `#/lesion/${row.line}`;
        const image = document.createElement("img");
        image.src = sliceUrl(row.folder, row.key_slice, row.window);
        image.alt = `${row.file_name}: not on disk`;
        image.onerror = () => { image.replaceWith(Object.assign(document.createElement("div"), { className: "missing", textContent: "key slice not on disk" })); };
        const box = document.createElement("div");
        box.className = "box";
        const scale = 180 / row.image_size[0];
        Object.assign(box.style, {
          left: `${row.box[0] * scale}px`, top: `${row.box[1] * scale}px`,
          width: `${(row.box[2] - row.box[0]) * scale}px`, height: `${(row.box[3] - row.box[1]) * scale}px`,
          borderColor: colourOf.get(row.track) || "#fff",
        });
        const label = document.createElement("div");
        label.className = "label";
        const chip = document.createElement("span");
        chip.className = "track-chip";
        chip.style.background = colourOf.get(row.track) || "#999";
        chip.textContent = row.track || "-";
        label.append(chip, `${row.folder.slice(-5)} #${row.key_slice}, ${row.long_mm.toFixed(1)} mm`);
        thumb.append(image, box, label);
        column.append(thumb);
      }
    }
    studies.append(column);
  }
  const tracks = $("#tracks");
  tracks.replaceChildren();
  for (const track of data.tracks) {
    const item = document.createElement("div");
    const chip = document.createElement("span");
    chip.className = "track-chip";
    chip.style.background = colourOf.get(track.id);
    chip.textContent = track.id;
    const steps = track.measurements.map((m) => `S${m.study}: ${m.long_mm.toFixed(1)} mm`).join(" → ");
    item.append(chip, `${track.type.replace("_", " ")}  ${steps}`);
    tracks.append(item);
  }
  $("#timeline").src = `/api/patient/${number}/timeline.png`;
}

// ---- routing ------------------------------------------------------------------------------------------
function route() {
  const { parts, params } = parseHash();
  if (parts[0] === "lesion" && parts[1]) showLesion(parts[1], params);
  else if (parts[0] === "patient" && parts[1]) showPatient(parts[1]);
  else showTable(params);
}
window.addEventListener("hashchange", route);
route();
