// cnn serve's page: draw on a 28×28 grid shown large, send the pixels (debounced)
// to /api/predict, show the top 3, the MNIST-style preprocessing and every conv
// and pool layer's feature maps. No libraries, nothing loaded from the internet.
"use strict";

const GRID = 28;                  // the picture sent: 28×28 grey levels, row by row
const BRUSH = 24;                 // stroke width on the 280×280 drawing surface (2.4 grid pixels)
const DEBOUNCE_MS = 80;           // wait this long after the last stroke movement before asking
const VIEW = 6;                   // preprocessing views: 28×28 drawn at 168×168

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const el = (id) => document.getElementById(id);

let drawing = false, last = null, mnistStyle = true, timer = null, busy = false, pending = false, answers = 0;

// A 256-entry colour map close to viridis (dark blue → green → yellow) for feature maps.
const VIRIDIS = (() => {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const lut = [];
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2), f = t - k;
    lut.push(stops[k].map((a, c) => Math.round(a + f * (stops[k + 1][c] - a))));
  }
  return lut;
})();

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  mnistStyle = true;
  el("label").textContent = "–";
  el("top3").innerHTML = "";
  el("layers").innerHTML = "";
  el("status").textContent = "";
  el("hint").textContent = "Draw with the mouse or a finger. The network answers as you draw.";
  for (const id of ["raw", "styled"]) blank(el(id));
}

function blank(canvas) {
  const c = canvas.getContext("2d");
  c.fillStyle = "#000";
  c.fillRect(0, 0, canvas.width, canvas.height);
}

function position(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = BRUSH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

// Pointer events cover mouse, pen and touch; touch-action: none (CSS) stops scrolling while drawing.
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  mnistStyle = true;  // drawing over a test digit makes it a drawing again
  last = position(event);
  stroke(last, last);
  schedule(DEBOUNCE_MS);
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const p = position(event);
  stroke(last, p);
  last = p;
  schedule(DEBOUNCE_MS);
});
for (const kind of ["pointerup", "pointercancel"]) {
  pad.addEventListener(kind, () => {
    if (!drawing) return;
    drawing = false;
    schedule(0);
  });
}

// The 280×280 surface averaged over 10×10 blocks: 28×28 grey levels 0-255.
function gridPixels() {
  const data = ctx.getImageData(0, 0, pad.width, pad.height).data;
  const block = pad.width / GRID, out = new Array(GRID * GRID).fill(0);
  for (let y = 0; y < pad.height; y++) {
    const row = Math.floor(y / block) * GRID;
    for (let x = 0; x < pad.width; x++) out[row + Math.floor(x / block)] += data[(y * pad.width + x) * 4];
  }
  return out.map((v) => Math.round(v / (block * block)));
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(send, delay);
}

async function send() {
  if (busy) { pending = true; return; }  // one request at a time; the latest drawing goes next
  busy = true;
  const pixels = gridPixels();
  drawGrey(el("raw"), Uint8Array.from(pixels), GRID, GRID);
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pixels, mnist_style: mnistStyle }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    show(body);
    el("status").textContent = "";
  } catch (error) {
    el("status").textContent = "error: " + error.message;
  } finally {
    busy = false;
    if (pending) { pending = false; send(); }
  }
}

function bytes(base64) {
  const text = atob(base64), out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function paint(canvas, values, width, height, colour) {
  const small = document.createElement("canvas");
  small.width = width; small.height = height;
  const c = small.getContext("2d"), image = c.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const [r, g, b] = colour(values[i]);
    image.data.set([r, g, b, 255], i * 4);
  }
  c.putImageData(image, 0, 0);
  const target = canvas.getContext("2d");
  target.imageSmoothingEnabled = false;
  target.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function drawGrey(canvas, values, width, height) {
  paint(canvas, values, width, height, (v) => [v, v, v]);
}

function show(body) {
  answers += 1;
  el("label").textContent = body.label;
  el("top3").innerHTML = "";
  for (const { class: name, p } of body.top) {
    const item = document.createElement("li");
    item.innerHTML = `<b></b><div class="bar"></div><span class="pct"></span>`;
    item.querySelector("b").textContent = name;
    item.querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
    item.querySelector(".pct").textContent = (100 * p).toFixed(1) + " %";
    el("top3").appendChild(item);
  }
  showPreprocessing(body.preprocessing);
  showLayers(body.layers);
  pad.dataset.answers = String(answers);
}

function showPreprocessing(steps) {
  const styled = el("styled");
  drawGrey(styled, bytes(steps.digit), steps.width, steps.height);
  el("styled-caption").innerHTML = steps.mnist_style
    ? 'fitted into 20×20, centred by mass<br><span class="key com">+</span> centre of mass'
    : "what the network gets";
  if (!steps.mnist_style) {
    el("prep-note").textContent = "A test digit is MNIST already: sent as it is.";
    return;
  }
  const raw = el("raw").getContext("2d"), scale = el("raw").width / GRID;
  if (steps.box) {
    const [top, left, bottom, right] = steps.box;
    raw.strokeStyle = "#e5484d"; raw.lineWidth = 2;
    raw.strokeRect(left * scale, top * scale, (right - left) * scale, (bottom - top) * scale);
  }
  if (steps.centre_of_mass) {
    const c = styled.getContext("2d"), sy = styled.height / steps.height, sx = styled.width / steps.width;
    const [y, x] = steps.centre_of_mass.map((v, i) => (v + 0.5) * (i ? sx : sy));
    c.strokeStyle = "#30a46c"; c.lineWidth = 2;
    c.beginPath(); c.moveTo(x - 8, y); c.lineTo(x + 8, y); c.moveTo(x, y - 8); c.lineTo(x, y + 8); c.stroke();
    const [rows, cols] = steps.fitted;
    el("prep-note").textContent = `Ink cropped, fitted into ${cols}×${rows} (aspect kept), ` +
      `placed so its centre of mass is at the centre of ${steps.width}×${steps.height}.`;
  } else {
    el("prep-note").textContent = "No ink yet.";
  }
}

function showLayers(layers) {
  const holder = el("layers");
  holder.innerHTML = "";
  for (const layer of layers) {
    const [channels, height, width] = layer.shape, data = bytes(layer.data);
    const row = document.createElement("div");
    row.className = "layer";
    row.dataset.layer = layer.name;
    const name = document.createElement("div");
    name.className = "name";
    name.innerHTML = `<b></b><small></small><small></small>`;
    name.querySelector("b").textContent = layer.name;
    name.querySelectorAll("small")[0].textContent = `${layer.kind}, ${channels}×${height}×${width}`;
    name.querySelectorAll("small")[1].textContent = `${layer.min.toFixed(2)} … ${layer.max.toFixed(2)}`;
    const maps = document.createElement("div");
    maps.className = "maps";
    for (let c = 0; c < channels; c++) {
      const canvas = document.createElement("canvas");
      canvas.width = width * Math.max(1, Math.floor(56 / width));
      canvas.height = height * Math.max(1, Math.floor(56 / height));
      canvas.title = `${layer.name} map ${c}`;
      paint(canvas, data.subarray(c * height * width, (c + 1) * height * width), width, height, (v) => VIRIDIS[v]);
      maps.appendChild(canvas);
    }
    row.append(name, maps);
    holder.appendChild(row);
  }
}

async function showTestDigit() {
  try {
    const response = await fetch("/api/test-digit");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    drawGrey(pad, Uint8Array.from(body.pixels), GRID, GRID);
    mnistStyle = false;
    el("hint").textContent = `Test digit #${body.index}, labelled ${body.label}. Draw on it to change it.`;
    schedule(0);
  } catch (error) {
    el("status").textContent = "error: " + error.message;
  }
}

async function start() {
  clearPad();
  el("clear").addEventListener("click", clearPad);
  el("test-digit").addEventListener("click", showTestDigit);
  try {
    const info = await (await fetch("/api/info")).json();
    const [c, h, w] = info.input;
    el("model").textContent = `${info.name} · ${info.checkpoint} · input ${c}×${h}×${w} · ${info.classes.length} classes`;
    if (!info.test_digits) {
      el("test-digit").disabled = true;
      el("test-digit").title = "no MNIST test files in the data folder (cnn download fetches them)";
    }
  } catch (error) {
    el("status").textContent = "error: cannot reach the server (" + error.message + ")";
  }
}

start();
