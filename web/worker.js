// Training of the filter grid in a Web Worker, so that the page stays responsive.
// Messages in:  {cmd: "init", digits, init, settings}, {cmd: "start"}, {cmd: "pause"},
//               {cmd: "reset"}, {cmd: "lr", value}, {cmd: "rule", value}.
// Messages out: {type: "progress", ...} while training, {type: "eval", ...} after each held-out
//               evaluation (accuracy and the current parameters).
// The loop is gridlib.filtergrid.experiments.make_task's train_step: the batch-mean gradient of
// the rule (SnAP-1 or SnAP-0), then one Adam step (optax.adam).
import * as fgm from "./filtergrid.js";

const EVAL_EVERY_S = 5.0; // held-out accuracy at most this often (1,000 digits cost ~300 examples' training)
const SLICE_MS = 150; // work between two looks at the message queue

let data = null;
let settings = null;
let init = null;
let params = null;
let opt = null;
let ws = null;
let running = false;
let rule = "snap1";
let lr = 3e-3;
let seen = 0;
let steps = 0;
let order = null;
let cursor = 0;
let rng = 1;
let lastEval = 0;
let rate = { t: 0, seen: 0, value: 0 };

// mulberry32: a small seeded generator, so that a reset replays the same batches
function random() {
  rng = (rng + 0x6d2b79f5) | 0;
  let t = Math.imul(rng ^ (rng >>> 15), 1 | rng);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function shuffle() {
  order = Uint32Array.from({ length: data.n_train }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  cursor = 0;
}

function reset() {
  params = Object.fromEntries(fgm.FIELDS.map((f) => [f, Float64Array.from(init[f])]));
  opt = fgm.adam_init(params);
  seen = 0;
  steps = 0;
  rng = 1;
  shuffle();
}

function evaluate() {
  const acc = fgm.accuracy(params, data.x_test, data.y_test, data.n_test, settings);
  lastEval = performance.now();
  const copy = Object.fromEntries(fgm.FIELDS.map((f) => [f, Float64Array.from(params[f])]));
  postMessage({ type: "eval", acc, seen, steps, params: copy });
}

function trainSlice() {
  if (!running) return;
  const t0 = performance.now();
  const { batch_size: bs, n_rows: n, gain, pixel_scale, dt } = settings;
  let loss = 0;
  let acc = 0;
  let count = 0;
  while (performance.now() - t0 < SLICE_MS) {
    const batch = [];
    const ys = [];
    for (let b = 0; b < bs; b++) {
      if (cursor >= order.length) shuffle();
      const d = order[cursor++];
      batch.push(fgm.image_rows(data.x_train.subarray(d * 784, (d + 1) * 784), gain, pixel_scale, n).xs);
      ys.push(data.y_train[d]);
    }
    const out = fgm.batch_grads(rule, params, batch, ys, ws, dt);
    fgm.adam_step(params, out.grad, opt, lr);
    loss += out.loss;
    acc += out.acc;
    count += 1;
    seen += bs;
    steps += 1;
  }
  const now = performance.now();
  if (now - rate.t > 1000) {
    rate = { t: now, seen, value: rate.t ? ((seen - rate.seen) * 1000) / (now - rate.t) : 0 };
  }
  const perS = rate.value || (count * bs * 1000) / (now - t0);
  postMessage({ type: "progress", seen, steps, loss: loss / count, acc: acc / count, examples_per_s: perS });
  if ((now - lastEval) / 1000 > EVAL_EVERY_S) evaluate();
  setTimeout(trainSlice, 0);
}

onmessage = (ev) => {
  const msg = ev.data;
  if (msg.cmd === "init") {
    data = msg.digits;
    settings = msg.settings;
    init = msg.init;
    lr = settings.lr;
    ws = new fgm.Workspace(settings.t_len, settings.n_rows, settings.n_cols);
    reset();
    evaluate();
  } else if (msg.cmd === "start" && !running) {
    running = true;
    rate = { t: performance.now(), seen, value: 0 };
    trainSlice();
  } else if (msg.cmd === "pause") {
    running = false;
    evaluate();
  } else if (msg.cmd === "reset") {
    running = false;
    reset();
    evaluate();
  } else if (msg.cmd === "lr") {
    lr = msg.value;
  } else if (msg.cmd === "rule") {
    rule = msg.value;
  }
};
