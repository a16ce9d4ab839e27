// The digit app's page: a drawing pad, and views of what the JSON API answers.
// No library, no build step: plain DOM and canvas.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
let lastInput = null; // the 28x28 the model saw, as the server prepared it
let drawing = false;
let strokes = 0;

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  strokes = 0;
  lastInput = null;
  $("prediction").textContent = "draw a digit";
  for (const id of ["bars", "activations", "gradients", "loss", "learned"]) $(id).innerHTML = "";
  $("input").getContext("2d").clearRect(0, 0, 140, 140);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  ink.strokeStyle = "#fff";
  ink.fillStyle = "#fff";
  ink.lineWidth = 18;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.beginPath();
  ink.arc(x, y, ink.lineWidth / 2, 0, 2 * Math.PI);
  ink.fill();
  ink.beginPath();
  ink.moveTo(x, y);
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ink.lineTo(x, y);
  ink.stroke();
  ink.beginPath();
  ink.moveTo(x, y);
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  strokes += 1;
  predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

async function api(path, body) {
  const answer = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}

function drawingRows() {
  // the pad shrunk to 140x140 (the browser averages), grey in [0, 1]: what /api/predict prepares
  const small = document.createElement("canvas");
  small.width = small.height = 140;
  const c = small.getContext("2d");
  c.drawImage(pad, 0, 0, 140, 140);
  const px = c.getImageData(0, 0, 140, 140).data;
  const rows = [];
  for (let r = 0; r < 140; r++) {
    const row = [];
    for (let k = 0; k < 140; k++) row.push(Math.round((px[4 * (r * 140 + k)] / 255) * 1000) / 1000);
    rows.push(row);
  }
  return rows;
}

async function predictDrawing() {
  try {
    show(await api("/api/predict", { drawing: drawingRows() }));
  } catch (e) {
    $("prediction").textContent = "(" + e.message + ")";
  }
}

async function predictImage() {
  if (lastInput) show(await api("/api/predict", { image: lastInput }));
}

// ---------------------------------------------------------------- drawing numbers

function flat(a) {
  return Array.isArray(a) ? a.flat(Infinity) : [a];
}

function colour(v, scale, signed) {
  // signed: blue (negative), white (0), red (positive); else black (0) to white (max)
  const t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0;
  if (!signed) {
    const g = Math.round(255 * Math.max(0, t));
    return [g, g, g];
  }
  const w = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? [255, w, w] : [w, w, 255];
}

function picture(values, rows, cols, signed, zoom, scale) {
  const canvas = document.createElement("canvas");
  canvas.width = cols;
  canvas.height = rows;
  canvas.style.width = cols * zoom + "px";
  canvas.style.height = rows * zoom + "px";
  const c = canvas.getContext("2d");
  const img = c.createImageData(cols, rows);
  const s = scale !== undefined ? scale : Math.max(1e-30, maxAbs(values));
  values.forEach((v, k) => {
    const [r, g, b] = colour(v, s, signed);
    img.data.set([r, g, b, 255], 4 * k);
  });
  c.putImageData(img, 0, 0);
  return canvas;
}

function strip(values, signed) {
  const canvas = picture(values, 1, values.length, signed, 1);
  canvas.className = "strip";
  canvas.style.width = "";
  canvas.style.height = "";
  return canvas;
}

function maxAbs(values) {
  // a loop, not Math.max(...values): a 784x1024 kernel is more arguments than a call takes
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

function norm(values) {
  return Math.sqrt(values.reduce((s, v) => s + v * v, 0));
}

function describe(values) {
  const max = maxAbs(values);
  return `${values.length} values, |max| ${max.toPrecision(3)}, norm ${norm(values).toPrecision(3)}`;
}

function view(array, signed) {
  // a (U,) vector as a strip; a (H, W, C) map as its first 16 channels; a (H, W) as one picture
  const box = document.createElement("div");
  const shape = [];
  for (let a = array; Array.isArray(a); a = a[0]) shape.push(a.length);
  const values = flat(array);
  if (shape.length === 3) {
    const [h, w, c] = shape;
    const maps = document.createElement("div");
    maps.className = "maps";
    const scale = Math.max(1e-30, maxAbs(values));
    for (let k = 0; k < Math.min(c, 16); k++) {
      const channel = [];
      for (let i = 0; i < h * w; i++) channel.push(values[i * c + k]);
      maps.appendChild(picture(channel, h, w, signed, Math.max(1, Math.floor(56 / h)), scale));
    }
    box.appendChild(maps);
  } else if (shape.length === 2) {
    // a (inputs, units) kernel: one row a unit, so that it reads across the page
    const [rows, cols] = shape;
    const t = [];
    for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) t.push(values[i * cols + j]);
    box.appendChild(picture(t, cols, rows, signed, Math.max(1, Math.min(8, Math.floor(640 / Math.max(rows, cols))))));
  } else if (values.length === 784) {
    // the input's own gradient (or the input): one number a pixel, shown as the 28x28 image
    box.appendChild(picture(values, 28, 28, signed, 3));
  } else {
    box.appendChild(strip(values, signed));
  }
  const what = document.createElement("div");
  what.className = "what";
  const more = shape.length === 3 && shape[2] > 16 ? "; first 16 channels" : shape.length === 2 ? "; a row for each unit" : "";
  what.textContent = `shape (${shape.join(", ")}): ${describe(values)}${more}`;
  box.appendChild(what);
  return box;
}

function kernelView(name, kernel) {
  // a first Dense layer's kernel gradient (784, U): each unit's column as a 28x28 image
  const rows = kernel.length;
  const cols = Array.isArray(kernel[0]) ? kernel[0].length : 0;
  if (rows === 784 && cols) {
    const box = document.createElement("div");
    const maps = document.createElement("div");
    maps.className = "maps";
    const all = flat(kernel);
    const scale = Math.max(1e-30, maxAbs(all));
    for (let u = 0; u < Math.min(cols, 32); u++) {
      const column = [];
      for (let i = 0; i < 784; i++) column.push(kernel[i][u]);
      const unit = picture(column, 28, 28, true, 2, scale);
      unit.title = `unit ${u}: dL/dW[:, ${u}] as 28x28`;
      maps.appendChild(unit);
    }
    box.appendChild(maps);
    const what = document.createElement("div");
    what.className = "what";
    what.textContent = `${name} gradient (784, ${cols}): each unit's 784 weights as a 28x28 image (first ${Math.min(cols, 32)}); red: the step lowers that weight`;
    box.appendChild(what);
    return box;
  }
  if (cols && Array.isArray(kernel[0][0])) {
    // a Conv2D kernel (kh, kw, cin, cout): summed over cin, as (kh, kw, cout) maps
    const sum = kernel.map((row) => row.map((cell) => cell[0].map((_, o) => cell.reduce((s, cin) => s + cin[o], 0))));
    return view(sum, true);
  }
  return view(kernel, true);
}

function layerRow(layer, formula) {
  // a layer's name and formula, as text, never HTML: the name comes from the model file
  const row = document.createElement("div");
  row.className = "layer";
  const name = document.createElement("div");
  name.className = "layer-head";
  name.textContent = `${layer.name} (${layer.class_name})`;
  row.appendChild(name);
  if (formula) {
    const f = document.createElement("span");
    f.className = "formula";
    f.textContent = formula;
    row.appendChild(f);
  }
  return row;
}

function section(parent, title, body) {
  const h = document.createElement("div");
  h.style.fontWeight = "600";
  h.textContent = title;
  parent.appendChild(h);
  parent.appendChild(body);
}

// ---------------------------------------------------------------- what the API answered

function bars(probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities)); // ten values
  $("bars").innerHTML = "";
  probabilities.forEach((p, k) => {
    const label = document.createElement("span");
    label.textContent = k;
    const bar = document.createElement("div");
    bar.className = "bar" + (k === best ? " best" : "");
    bar.style.width = (100 * p).toFixed(1) + "%";
    const value = document.createElement("span");
    value.textContent = p.toFixed(3);
    $("bars").append(label, bar, value);
  });
}

function show(answer) {
  lastInput = answer.input;
  const p = answer.probabilities[answer.label];
  $("prediction").textContent = `${answer.label}  (p = ${p.toFixed(3)})`;
  bars(answer.probabilities);
  const input = $("input").getContext("2d");
  input.imageSmoothingEnabled = false;
  input.clearRect(0, 0, 140, 140);
  input.drawImage(picture(flat(answer.input), 28, 28, false, 1, 1), 0, 0, 140, 140);
  const box = $("activations");
  box.innerHTML = "";
  for (const layer of answer.layers) {
    const row = layerRow(layer, layer.forward);
    row.appendChild(view(layer.output, false));
    box.appendChild(row);
  }
}

async function backward() {
  if (!lastInput) return;
  const label = Number($("label").value);
  const answer = await api("/api/backward", { image: lastInput, label });
  const p = answer.probabilities[label];
  const shown = p === 0 ? "0 (below float32's smallest: the loss is computed from the logits)" : p >= 1e-4 ? p.toFixed(4) : p.toExponential(3);
  $("loss").textContent = `loss L = -log p[${label}] = -log ${shown} = ${answer.loss.toFixed(4)}`;
  const box = $("gradients");
  box.innerHTML = "";
  for (const layer of answer.layers) {
    const row = layerRow(layer, layer.backward);
    section(row, "gy = dL/dy, the gradient that arrives", view(layer.gy, true));
    for (const [name, g] of Object.entries(layer.gradients)) section(row, `d L / d ${name}`, kernelView(name, g));
    section(row, "gx = dL/dx, the gradient passed on", view(layer.gx, true));
    box.appendChild(row);
  }
}

async function learn() {
  if (!lastInput) return;
  const label = Number($("label").value);
  const answer = await api("/api/learn", { image: lastInput, label });
  const b = answer.before, a = answer.after;
  $("learned").textContent = `one step on label ${label}: before ${b.label} (p[${label}] = ${b.probabilities[label].toFixed(3)}), ` +
    `after ${a.label} (p[${label}] = ${a.probabilities[label].toFixed(3)})`;
  await predictImage();
  await modelInfo();
}

async function reset() {
  await api("/api/reset", {});
  $("learned").textContent = "the model is back as it was loaded";
  await predictImage();
  await modelInfo();
}

async function modelInfo() {
  const m = await api("/api/model");
  $("model-info").textContent = `model: ${m.source} - ` + m.layers.map((l) => l.class_name).join(" > ") +
    (m.changed ? "  (changed by Learn; Reset to undo)" : "");
}

$("clear").addEventListener("click", clearPad);
$("backward").addEventListener("click", () => backward().catch((e) => ($("loss").textContent = e.message)));
$("learn").addEventListener("click", () => learn().catch((e) => ($("learned").textContent = e.message)));
$("reset").addEventListener("click", () => reset().catch((e) => ($("learned").textContent = e.message)));
clearPad();
modelInfo();
