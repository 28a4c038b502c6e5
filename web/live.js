// The live page (book/live.md): draw or pick a digit, watch the filter grid's wave and readout
// and gridnet's answer; pick a Fashion-MNIST garment for NeuralGrid (trained on Fashion-MNIST);
// train the grid with SnAP-1 or SnAP-0 in a worker.
// Everything it loads comes from this folder (written by `python -m gridlib export-web`).
import { loadBundle, f64 } from "./bundle.js";
import * as fgm from "./filtergrid.js";
import { network_apply, fashion_pixels } from "./neuralgrid.js";
import * as gnm from "./gridnet.js";

const here = (name) => new URL(name, import.meta.url);
const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// ---- canvases at the screen's resolution -------------------------------------------------------

// Every canvas's backing store is its CSS box times devicePixelRatio, so that it is drawn at the
// screen's resolution at any width, and a chart's text is FONT_PX CSS px on screen however far
// the page scales the canvas down. Its shape stays the one its width and height attributes give
// (as CSS aspect-ratio). Each canvas keeps the function that draws it, run again whenever its
// box or the pixel ratio changes; the pad keeps its ink instead (copied, scaled, into the new
// store).
const FONT_PX = 14;
const painters = new Map(); // canvas -> the function that draws it at its current size
const keepInk = new WeakSet(); // canvases whose content is copied, not redrawn, on a resize

function fit(canvas) {
  if (!canvas.style.aspectRatio) canvas.style.aspectRatio = `${canvas.width} / ${canvas.height}`;
  const dpr = window.devicePixelRatio || 1;
  const [w, h] = [Math.round(canvas.clientWidth * dpr), Math.round(canvas.clientHeight * dpr)];
  if (!w || !h || (w === canvas.width && h === canvas.height)) return false; // hidden, or fitted
  let old = null;
  if (keepInk.has(canvas)) {
    old = document.createElement("canvas");
    [old.width, old.height] = [canvas.width, canvas.height];
    old.getContext("2d").drawImage(canvas, 0, 0);
  }
  [canvas.width, canvas.height] = [w, h];
  if (old) canvas.getContext("2d").drawImage(old, 0, 0, w, h);
  return true;
}

function refit(canvas) {
  if (fit(canvas)) painters.get(canvas)();
}

const resized = new ResizeObserver((entries) => entries.forEach((e) => refit(e.target)));
const refitAll = () => painters.forEach((_, canvas) => refit(canvas));
window.addEventListener("resize", refitAll);
(function watchRatio() { // a zoom, or a move to another screen, changes the pixel ratio
  matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`)
    .addEventListener("change", () => { refitAll(); watchRatio(); }, { once: true });
})();

// draw `canvas` with `draw` now, and again at each change of its size
function paint(canvas, draw) {
  if (!painters.has(canvas)) resized.observe(canvas);
  painters.set(canvas, draw);
  fit(canvas);
  draw();
}

// the 2-D context of `canvas`, scaled so that one unit is one CSS px; returns [ctx, w, h] in CSS px
function cssContext(canvas) {
  const ctx = canvas.getContext("2d");
  const k = canvas.clientWidth ? canvas.width / canvas.clientWidth : 1;
  ctx.setTransform(k, 0, 0, k, 0, 0);
  return [ctx, canvas.width / k, canvas.height / k];
}

// ---- colour maps ------------------------------------------------------------------------------

// diverging map for values in [-1, 1]: blue (negative), white (0), red (positive)
function diverging(v) {
  const x = Math.max(-1, Math.min(1, v));
  const a = Math.round(255 * (1 - Math.abs(x)));
  return x >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
}

// values (rows x cols, row-major) as coloured cells filling the canvas
function heatmap(canvas, values, rows, cols, scale) {
  paint(canvas, () => {
    const ctx = canvas.getContext("2d");
    const cw = canvas.width / cols;
    const ch = canvas.height / rows;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        ctx.fillStyle = diverging(values[i * cols + j] / scale);
        ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
      }
    }
  });
}

// a 28 x 28 image of bytes k (white on black, as MNIST and Fashion-MNIST store them),
// scaled to fill the canvas without smoothing
function showBytes(canvas, pixels) {
  const img = new ImageData(28, 28);
  for (let p = 0; p < 784; p++) img.data.set([pixels[p], pixels[p], pixels[p], 255], 4 * p);
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = 28;
  tmp.getContext("2d").putImageData(img, 0, 0);
  const draw = () => {
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  };
  if (keepInk.has(canvas)) { // the pad: its ink is kept on a resize, not redrawn
    fit(canvas);
    draw();
  } else {
    paint(canvas, draw);
  }
}

function maxAbs(a) {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m || 1;
}

// ---- the drawing pad --------------------------------------------------------------------------

// A square pad drawn in white on black, strokes STROKE of its side wide; to28 turns it into an
// MNIST-like 28 x 28 digit (bounding box scaled into 20 x 20, centred by its centre of mass),
// pixels as bytes k.
const STROKE = 22 / 280;

class Pad {
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.drawing = false;
    keepInk.add(canvas);
    this.clear();
    paint(canvas, () => {}); // fitted to its box, ink kept
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const t of ["pointerup", "pointerleave", "pointercancel"]) canvas.addEventListener(t, () => this.up());
  }

  clear() {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.empty = true;
  }

  at(e) {
    const r = this.canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * this.canvas.width) / r.width, ((e.clientY - r.top) * this.canvas.height) / r.height];
  }

  down(e) {
    e.preventDefault();
    this.drawing = true;
    this.last = this.at(e);
    this.line(this.last, this.last);
  }

  move(e) {
    if (!this.drawing) return;
    e.preventDefault();
    const p = this.at(e);
    this.line(this.last, p);
    this.last = p;
  }

  up() {
    if (!this.drawing) return;
    this.drawing = false;
    this.onChange();
  }

  line(a, b) {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = STROKE * this.canvas.width;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
    this.empty = false;
  }

  show(pixels) {
    showBytes(this.canvas, pixels);
    this.empty = false;
  }

  to28() {
    const w = Math.min(this.canvas.width, this.canvas.height);
    const src = this.ctx.getImageData(0, 0, w, w).data;
    let [x0, y0, x1, y1] = [w, w, -1, -1];
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        if (src[4 * (y * w + x)] > 20) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x);
          y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      }
    }
    const out = new Uint8Array(784);
    if (x1 < 0) return out;
    const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const small = document.createElement("canvas");
    small.width = small.height = 20;
    const sctx = small.getContext("2d");
    sctx.fillStyle = "#000";
    sctx.fillRect(0, 0, 20, 20);
    const cx = (x0 + x1 + 1) / 2;
    const cy = (y0 + y1 + 1) / 2;
    sctx.drawImage(this.canvas, cx - side / 2, cy - side / 2, side, side, 0, 0, 20, 20);
    const s = sctx.getImageData(0, 0, 20, 20).data;
    let [mass, mx, my] = [0, 0, 0];
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const v = s[4 * (y * 20 + x)];
        mass += v; mx += v * x; my += v * y;
      }
    }
    const dx = Math.round(14 - mx / mass - 0.5);
    const dy = Math.round(14 - my / mass - 0.5);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        const [tx, ty] = [x + dx, y + dy];
        if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) out[ty * 28 + tx] = s[4 * (y * 20 + x)];
      }
    }
    return out;
  }
}

// ---- line charts ------------------------------------------------------------------------------

// Line charts with text FONT_PX CSS px high: the canvas is drawn in CSS px (cssContext).
const MINUS = (x) => String(x).replace("-", "\u2212"); // a true minus sign
const COUNT = (x) => x.toLocaleString("en-US"); // 8,704

// Round tick values from lo to hi, at most about n of them: steps of 1, 2, 2.5 or 5 times a
// power of ten (0, 20, ..., 100; 0, 2,500, ..., 7,500), the first that fits.
function ticks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) {
    out.push(Number((Math.round(v / step) * step).toPrecision(12)));
  }
  return out;
}

function chart(canvas, series, opts) {
  paint(canvas, () => drawChart(canvas, series, opts));
}

function drawChart(canvas, series, { xMax, yMin, yMax, xLabel, yLabel, highlight = -1 }) {
  const [ctx, w, h] = cssContext(canvas);
  const f = FONT_PX;
  const [l, r, t, b] = [3.8 * f, 0.8 * f, 0.8 * f, 2.9 * f];
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#555";
  ctx.lineWidth = 1;
  ctx.strokeRect(l, t, w - l - r, h - t - b);
  const X = (x) => l + (x / xMax) * (w - l - r);
  const Y = (y) => t + (1 - (y - yMin) / (yMax - yMin)) * (h - t - b);
  ctx.fillStyle = "#222";
  ctx.font = `${f}px sans-serif`;
  ctx.textAlign = "center";
  ctx.fillText(xLabel, l + (w - l - r) / 2, h - 0.4 * f);
  // ticks at round values with faint grid lines; as many as fit the axis at this font size
  const xTicks = ticks(0, xMax, Math.max(2, Math.floor((w - l - r) / (5 * f))));
  const yTicks = ticks(yMin, yMax, Math.max(2, Math.floor((h - t - b) / (2.2 * f))));
  Object.assign(canvas.dataset, { xTicks: xTicks.join(","), yTicks: yTicks.join(",") }); // for tests
  ctx.strokeStyle = "#ddd";
  ctx.beginPath();
  xTicks.forEach((x) => { ctx.moveTo(X(x), t); ctx.lineTo(X(x), h - b); });
  yTicks.forEach((y) => { ctx.moveTo(l, Y(y)); ctx.lineTo(w - r, Y(y)); });
  ctx.stroke();
  xTicks.forEach((x, k) => {
    ctx.textAlign = k === 0 ? "left" : x === xMax ? "right" : "center";
    ctx.fillText(COUNT(x), X(x), h - b + 1.2 * f);
  });
  ctx.textAlign = "right";
  yTicks.forEach((y) => ctx.fillText(MINUS(y), l - 0.35 * f, Y(y) + 0.35 * f));
  ctx.strokeStyle = "#555";
  ctx.strokeRect(l, t, w - l - r, h - t - b);
  ctx.save();
  ctx.translate(f, t + (h - t - b) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  series.forEach((pts, q) => {
    if (!pts.length) return;
    ctx.strokeStyle = COLOURS[q % COLOURS.length];
    ctx.lineWidth = q === highlight ? 3 : 1.5;
    ctx.beginPath();
    pts.forEach(([x, y], k) => (k ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
  });
}

// ---- each model in words, and where it comes from -----------------------------------------------

const pct = (a) => `${(100 * a).toFixed(2)}\u00a0%`;
const NAMES = { snap0: "SnAP-0", snap1: "SnAP-1", snap2: "SnAP-2", bptt: "BPTT", rtrl: "RTRL",
  adam: "Adam", adamw: "AdamW", sgd: "SGD", cpu: "CPU" };
const word = (key) => NAMES[key] ?? String(key);
const plural = (n, what) => `${COUNT(n)} ${what}${n === 1 ? "" : "s"}`;

// "<who> is seed 0 of <runs> (<how trained>): it classifies <accuracy> of the <n> test <items>
// correctly", from a run's exported record (gridlib.web._provenance); parts it lacks are left out
function about(who, trained, runs, how, acc, nTest, items) {
  const seed = trained.seed ?? null;
  const which = seed === null ? runs : `seed ${seed} of ${runs}`;
  const detail = how.filter(Boolean).join(", ");
  const of = nTest ? `the ${COUNT(nTest)} test ${items}` : `its test ${items}`;
  return `${who} is ${which}${detail ? ` (${detail})` : ""}: it classifies ${pct(acc)} of ${of} correctly.`;
}

// the run's name and how it was made (command, commit, date, machine), in a <details> element
function provenance(details, trained) {
  const line = (label, text) => {
    const p = document.createElement("p");
    const code = document.createElement("code");
    code.textContent = text;
    p.append(`${label} `, code);
    return p;
  };
  details.querySelectorAll("p").forEach((e) => e.remove());
  details.append(line("Run", trained.name), line("Made by", trained.describe));
}

// ---- the page ---------------------------------------------------------------------------------

async function main() {
  const root = $("live-root");
  if (!root) return;
  const status = $("live-status");
  const manifest = await (await fetch(here("manifest.json"))).json();
  const [digits, fg] = await Promise.all([loadBundle(here("digits.bin")), loadBundle(here("filtergrid.bin"))]);
  const ng = manifest.neuralgrid ? await loadBundle(here("neuralgrid.bin")) : null;
  const garments = ng && await loadBundle(here("garments.bin"));
  const gn = manifest.gridnet ? await loadBundle(here("gridnet.bin")) : null;
  const settings = fg.meta.settings;
  const { n_rows: n, n_cols: m, gain, pixel_scale, dt } = settings;
  const trained = Object.fromEntries(fgm.FIELDS.map((f) => [f, f64(fg.arrays[`trained.${f}`])]));
  const init = Object.fromEntries(fgm.FIELDS.map((f) => [f, f64(fg.arrays[`init.${f}`])]));
  const ngParams = ng && Object.fromEntries(Object.entries(ng.arrays).map(([k, v]) => [k, f64(v)]));
  const gnParams = gn && Object.fromEntries(Object.entries(gn.arrays).map(([k, v]) => [k, f64(v)]));
  const gnTable = gn && gnm.neighbour_table(gn.meta.config.grid, gn.meta.config.block);
  const nTest = digits.meta.n_test;
  const fgRun = fg.meta.trained;
  const fgc = fgRun.config;
  $("live-fg-about").textContent = about("The filter grid", fgRun, `the book's ${word(fgc.rule)} runs`,
    [`${word(fgc.optimizer)}, ${plural(fgc.epochs, "epoch")} of the ${COUNT(fgc.n_train)} training digits`,
      `batch ${fgc.batch_size}`], fgRun.metrics["test/acc"], fgc.n_test, "digits");
  provenance($("live-fg-provenance"), fgRun);

  // -- classify and animate --------------------------------------------------------------------
  let y = null;
  let r = null;
  let frame = 0;
  let timer = null;
  const gridCanvas = $("live-wave");
  const traces = $("live-traces");
  const slider = $("live-t");

  function drawFrame(t) {
    frame = t;
    slider.value = String(t);
    $("live-t-label").textContent = `time step ${t + 1} of ${settings.t_len}`;
    heatmap(gridCanvas, y.subarray(t * n * m, (t + 1) * n * m), n, m, 1);
    const series = [];
    for (let j = 0; j < m; j++) {
      const pts = [];
      for (let s = 0; s <= t; s++) pts.push([s + 1, r[s * m + j]]);
      series.push(pts);
    }
    const pred = fgm.argmax(fgm.logits_of(r, settings.t_len, m));
    chart(traces, series, { xMax: settings.t_len, yMin: -1, yMax: 1, xLabel: "time step t", yLabel: "readout r(t)", highlight: pred });
  }

  function play() {
    clearInterval(timer);
    let t = 0;
    timer = setInterval(() => {
      drawFrame(t);
      t += 1;
      if (t >= settings.t_len) clearInterval(timer);
    }, 90);
  }

  function classify(pixels, label = null) {
    const { xs, t_len } = fgm.image_rows(pixels, gain, pixel_scale, n);
    ({ y, r } = fgm.forward(trained, xs, t_len, n, m, dt));
    const logits = fgm.logits_of(r, t_len, m);
    const pred = fgm.argmax(logits);
    const out = $("live-fg-pred");
    out.textContent = String(pred);
    out.dataset.pred = String(pred);
    let [ink, moment] = [0, 0];
    pixels.forEach((k, p) => { ink += k; moment += k * (p % 28); });
    out.dataset.ink = String(ink); // what the tests read: the digit's mass and mean column
    out.dataset.centre = String(ink ? moment / ink : -1);
    $("live-label").textContent = label === null ? "your drawing" : `test digit, label ${label}`;
    $("live-legend").innerHTML = COLOURS.map((c, j) => `<span style="color:${c}">&#9632;&nbsp;${j}</span>`).join(" ");
    const x01 = Float64Array.from(pixels, (k) => k / 256);
    if (gnParams) {
      const cfg = gn.meta.config;
      const res = gnm.forward(gnParams, x01, cfg, gnTable);
      $("live-gn-pred").textContent = String(fgm.argmax(res.logits));
      const g = cfg.grid;
      const last = res.grids[res.grids.length - 1];
      ["live-gn-k0", "live-gn-kmid", "live-gn-klast"].forEach((id, q) => {
        const k = [0, g / 2, g - 1][q];
        const face = new Float64Array(g * g);
        for (let p = 0; p < g * g; p++) face[p] = last[p * g + k];
        heatmap($(id), face, g, g, maxAbs(face));
      });
    }
    play();
  }

  const pad = new Pad($("live-pad"), () => classify(pad.to28()));
  let testIndex = 0;
  function showTest() {
    const px = digits.arrays.x_test.subarray(testIndex * 784, (testIndex + 1) * 784);
    pad.show(px);
    classify(px, digits.arrays.y_test[testIndex]);
    testIndex = (testIndex + 1) % nTest;
  }
  // -- NeuralGrid on held-out Fashion-MNIST garments ------------------------------------------
  let garment = 0;
  function showGarment(i) {
    const nG = garments.meta.n_test;
    garment = ((i % nG) + nG) % nG;
    const names = garments.meta.classes;
    const k = garments.arrays.x_test.subarray(garment * 784, (garment + 1) * 784);
    showBytes($("live-ng-img"), k);
    const res = network_apply(ngParams, fashion_pixels(k), ng.meta.config);
    const pred = fgm.argmax(res.logits);
    const truth = garments.arrays.y_test[garment];
    const out = $("live-ng-pred");
    out.textContent = names[pred];
    out.dataset.pred = String(pred); // what the tests read
    out.dataset.index = String(garment);
    $("live-ng-true").textContent = `test image ${garment + 1} of ${nG} · true class: ${names[truth]}` +
      (pred === truth ? " · correct" : " · wrong");
    const { height: hh, width: ww } = ng.meta.config;
    const acts = new Float64Array(hh * ww); // (H, W): rows = neuron, columns = layer
    for (let l = 0; l < ww; l++) for (let i = 0; i < hh; i++) acts[i * ww + l] = res.acts[l * hh + i];
    heatmap($("live-ng-acts"), acts, hh, ww, 1);
  }
  if (ngParams) {
    const names = garments.meta.classes;
    const pick = $("live-ng-class");
    names.forEach((c, j) => pick.add(new Option(c, String(j))));
    // the next shipped garment of the chosen class, after the one shown
    pick.addEventListener("change", () => {
      if (pick.value === "") return;
      const want = Number(pick.value);
      const nG = garments.meta.n_test;
      for (let s = 1; s <= nG; s++) {
        if (garments.arrays.y_test[(garment + s) % nG] === want) { showGarment(garment + s); break; }
      }
      pick.value = ""; // so that the same class can be picked again
    });
    $("live-ng-prev").addEventListener("click", () => showGarment(garment - 1));
    $("live-ng-next").addEventListener("click", () => showGarment(garment + 1));
    let right = 0;
    for (let i = 0; i < garments.meta.n_test; i++) {
      const k = garments.arrays.x_test.subarray(i * 784, (i + 1) * 784);
      right += fgm.argmax(network_apply(ngParams, fashion_pixels(k), ng.meta.config).logits) === garments.arrays.y_test[i] ? 1 : 0;
    }
    const run = ng.meta.trained;
    const c = run.config;
    $("live-ng-about").textContent = about("NeuralGrid", run,
      c.epochs ? `its ${c.epochs}-epoch runs on Fashion-MNIST` : "its runs on Fashion-MNIST",
      [c.n_train && `${COUNT(c.n_train)} training images`, c.batch_size && `batch ${c.batch_size}`],
      run.metrics.test_acc, c.n_test, "images");
    $("live-ng-score").textContent = `Of the ${garments.meta.n_test} test garments this page ships, it ` +
      `classifies ${right} correctly (${pct(right / garments.meta.n_test)}).`;
    provenance($("live-ng-provenance"), run);
    $("live-ng-score").dataset.right = String(right);
    showGarment(0);
  }

  $("live-clear").addEventListener("click", () => { pad.clear(); });
  $("live-next").addEventListener("click", showTest);
  slider.max = String(settings.t_len - 1);
  slider.addEventListener("input", () => { clearInterval(timer); drawFrame(Number(slider.value)); });
  $("live-play").addEventListener("click", play);
  $("live-ng").hidden = !ngParams;
  $("live-gn").hidden = !gnParams;
  if (gn) {
    const run = gn.meta.trained;
    const [c, mt] = [run.config, run.metrics];
    $("live-gn-about").textContent = about("gridnet", run, `its ${word(c.preset)} runs`,
      [`${word(c.optimizer)}, ${plural(c.epochs, "epoch")} of the ${COUNT(mt.n_train)} training digits`,
        `batch ${c.batch_size}`], mt.test_acc, mt.n_test, "digits");
    provenance($("live-gn-provenance"), run);
  }
  const absent = [!ng && "NeuralGrid", !gn && "gridnet"].filter(Boolean);
  $("live-models-note").textContent = absent.length ? `This build of the book has no saved parameters for ${absent.join(" or ")}, so ${absent.length > 1 ? "their panels are" : "its panel is"} not shown.` : "";
  $("live-models-note").hidden = !absent.length;

  // -- training in a worker --------------------------------------------------------------------
  const worker = new Worker(here("worker.js"), { type: "module" });
  const history = [];
  const sp = settings.state_per_parameter;
  $("live-state").textContent = `Learning state carried per parameter: SnAP-1 ${sp.snap1}, SnAP-0 ${sp.snap0} floats; BPTT stores ${sp.bptt} per parameter for ${settings.t_len} steps, and more for longer sequences.`;
  const accChart = $("live-acc");
  function drawAcc() {
    const xMax = Math.max(3200, ...history.map((h) => h[0]));
    chart(accChart, [history.map(([x, a]) => [x, 100 * a])], { xMax, yMin: 0, yMax: 100, xLabel: "training examples seen", yLabel: "held-out accuracy (%)" });
  }
  worker.onmessage = (ev) => {
    const msg = ev.data;
    if (msg.type === "progress") {
      $("live-rate").textContent = COUNT(Math.round(msg.examples_per_s));
      $("live-rate").dataset.value = String(msg.examples_per_s);
      $("live-seen").dataset.value = String(msg.seen);
      $("live-seen").textContent = `${plural(msg.seen, "example")}, ${plural(msg.steps, "step")}, batch loss ${msg.loss.toFixed(3)}`;
    } else if (msg.type === "eval") {
      if (history.length && msg.seen < history[history.length - 1][0]) history.length = 0;
      history.push([msg.seen, msg.acc]);
      // before training (and after Reset): the accuracy of the exported initialisation
      $("live-heldout-what").textContent = msg.seen ?
        `Accuracy on the ${COUNT(nTest)} held-out digits after ${plural(msg.seen, "training example")}` :
        `Accuracy of the untrained grid (the book's initialisation; guessing scores ${100 / m}\u00a0%) on the ${COUNT(nTest)} held-out digits`;
      $("live-heldout").textContent = pct(msg.acc);
      $("live-heldout").dataset.value = String(msg.acc);
      $("live-heldout").dataset.seen = String(msg.seen);
      drawAcc();
      drawParams(msg.params);
    }
  };
  // the parameter maps, from the exported initialisation until the worker's first evaluation
  function drawParams(params) {
    fgm.FIELDS.forEach((f) => {
      // weights and biases around 0; log tau (all negative) around the middle of its range
      let v = params[f];
      if (f === "log_tau") {
        const [lo, hi] = [Math.min(...v), Math.max(...v)];
        v = v.map((x) => x - (lo + hi) / 2);
      }
      heatmap($(`live-p-${f}`), v, n, m, maxAbs(v));
    });
  }
  drawParams(init);
  // a worker that fails (an old browser without module workers, an error in training) says so
  // on the page; the error still reaches the console
  worker.onerror = (e) => {
    $("live-seen").textContent = `Training stopped: ${e.message || "the worker failed"}.`;
  };
  worker.postMessage({
    cmd: "init", settings, init,
    digits: { x_train: digits.arrays.x_train, y_train: digits.arrays.y_train, x_test: digits.arrays.x_test,
              y_test: digits.arrays.y_test, n_train: digits.meta.n_train, n_test: nTest },
  });
  const run = $("live-run");
  run.addEventListener("click", () => {
    const start = run.dataset.state !== "running";
    worker.postMessage({ cmd: start ? "start" : "pause" });
    run.dataset.state = start ? "running" : "paused";
    run.textContent = start ? "Pause" : "Train";
  });
  $("live-reset").addEventListener("click", () => {
    worker.postMessage({ cmd: "reset" });
    $("live-rate").textContent = "\u2013"; // no rate until training starts again
    delete $("live-rate").dataset.value;
    $("live-seen").textContent = "";
    run.dataset.state = "paused";
    run.textContent = "Train";
  });
  $("live-lr").addEventListener("change", (e) => worker.postMessage({ cmd: "lr", value: Number(e.target.value) }));
  $("live-rule").addEventListener("change", (e) => worker.postMessage({ cmd: "rule", value: e.target.value }));
  $("live-lr").value = String(settings.lr);
  drawAcc();
  showTest();
  status.textContent = `Ready: ${COUNT(digits.meta.n_train)} training and ${COUNT(nTest)} held-out MNIST digits loaded` +
    (garments ? `, and ${COUNT(garments.meta.n_test)} held-out Fashion-MNIST garments.` : ".");
  root.dataset.ready = "true";
}

main().catch((err) => {
  const status = $("live-status");
  if (status) status.textContent = `The live page could not start: ${err.message}`;
  throw err;
});
