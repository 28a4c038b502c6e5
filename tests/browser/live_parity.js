// The page's JavaScript against the library's float64 fixtures (gridlib/web.py), run by
// tests/test_live_parity.py in headless Chromium. Sets window.parity to the largest relative
// differences found (the test compares them with its tolerances) and the examples per second.
import { loadBundle, f64 } from "./live/bundle.js";
import * as fgm from "./live/filtergrid.js";
import { network_apply, fashion_pixels } from "./live/neuralgrid.js";
import * as gnm from "./live/gridnet.js";

// max |got - want| / max |want| over one array
function rel(got, want) {
  let num = 0;
  let den = 0;
  for (let k = 0; k < want.length; k++) {
    num = Math.max(num, Math.abs(got[k] - want[k]));
    den = Math.max(den, Math.abs(want[k]));
  }
  return den > 0 ? num / den : num;
}

function params(arrays, prefix) {
  return Object.fromEntries(fgm.FIELDS.map((f) => [f, f64(arrays[`${prefix}.${f}`])]));
}

function pick(arrays, prefix) {
  const out = {};
  for (const [k, v] of Object.entries(arrays)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = f64(v);
  return out;
}

async function run() {
  const [digits, garments, fg, fix] = await Promise.all(
    ["digits", "garments", "filtergrid", "fixtures"].map((n) => loadBundle(`live/${n}.bin`)));
  const s = fix.meta.filtergrid;
  const { n_rows: n, n_cols: m, gain, pixel_scale, dt } = s;
  const px = (set, d) => digits.arrays[`x_${set}`].subarray(d * 784, (d + 1) * 784);
  const out = {};
  const worst = (key, value) => { out[key] = Math.max(out[key] ?? 0, value); };

  const init = params(fg.arrays, "init");
  const trained = params(fg.arrays, "trained");
  const labels = fix.arrays["fg.labels"];
  const ms = {};
  let lap = performance.now();
  const done = (what) => { const now = performance.now(); ms[what] = now - lap; lap = now; };
  for (let d = 0; d < fix.meta.digits; d++) {
    const { xs, t_len } = fgm.image_rows(px("test", d), gain, pixel_scale, n);
    for (const [tag, p] of [["init", init], ["trained", trained]]) {
      const { r } = fgm.forward(p, xs, t_len, n, m, dt);
      const want = fix.arrays[`fg.readout.${tag}`].subarray(d * t_len * m, (d + 1) * t_len * m);
      worst("readout", rel(r, want));
    }
    for (const rule of ["snap1", "snap0"]) {
      const g = fgm.rule_grads(rule, init, xs, labels[d], t_len, n, m, dt);
      worst(`${rule}.loss`, rel([g.loss], [fix.arrays[`fg.${rule}.loss`][d]]));
      for (const f of fgm.FIELDS) {
        const want = fix.arrays[`fg.${rule}.${f}`].subarray(d * n * m, (d + 1) * n * m);
        worst(rule, rel(g.grad[f], want));
      }
    }
  }

  done("readout_and_gradients");
  // Adam on SnAP-1 from the initialisation, batches of consecutive training digits
  const p = params(fg.arrays, "init");
  const state = fgm.adam_init(p);
  const ws = new fgm.Workspace(28, n, m);
  const bs = fix.meta.batch_size;
  const t0 = performance.now();
  for (let step = 0; step < fix.meta.adam_steps; step++) {
    const batch = [];
    const ys = [];
    for (let b = step * bs; b < (step + 1) * bs; b++) {
      batch.push(fgm.image_rows(px("train", b), gain, pixel_scale, n).xs);
      ys.push(digits.arrays.y_train[b]);
    }
    const { grad } = fgm.batch_grads("snap1", p, batch, ys, ws, dt);
    fgm.adam_step(p, grad, state, s.lr);
  }
  out.examples_per_s = (fix.meta.adam_steps * bs) / ((performance.now() - t0) / 1000);
  for (const f of fgm.FIELDS) worst("adam", rel(p[f], fix.arrays[`fg.adam.${f}`]));
  done("adam");

  // NeuralGrid on the shipped Fashion-MNIST garments (its run's data set), gridnet on MNIST
  // digits: logits on the first images, predictions on all of them (gridnet: the first ones)
  const ng = pick(fix.arrays, "ng.param.");
  const ngDims = fix.meta.neuralgrid.config;
  const gn = pick(fix.arrays, "gn.param.");
  const gnCfg = fix.meta.gridnet.config;
  const table = gnm.neighbour_table(gnCfg.grid, gnCfg.block);
  const x01 = (d) => Float64Array.from(px("test", d), (k) => k / 256);
  const nc = 10;
  out.ng_pred_mismatch = 0;
  out.gn_pred_mismatch = 0;
  for (let d = 0; d < garments.meta.n_test; d++) {
    const k = garments.arrays.x_test.subarray(d * 784, (d + 1) * 784);
    const { logits } = network_apply(ng, fashion_pixels(k), ngDims);
    if (d < fix.meta.logit_digits) worst("neuralgrid", rel(logits, fix.arrays["ng.logits"].subarray(d * nc, (d + 1) * nc)));
    out.ng_pred_mismatch += fgm.argmax(logits) === fix.arrays["ng.pred"][d] ? 0 : 1;
  }
  done("neuralgrid");
  for (let d = 0; d < fix.meta.gridnet_pred_digits; d++) {
    const { logits } = gnm.forward(gn, x01(d), gnCfg, table);
    if (d < fix.meta.logit_digits) worst("gridnet", rel(logits, fix.arrays["gn.logits"].subarray(d * nc, (d + 1) * nc)));
    out.gn_pred_mismatch += fgm.argmax(logits) === fix.arrays["gn.pred"][d] ? 0 : 1;
  }
  done("gridnet");
  out.ms = ms; // where the page's time goes, for the test's report
  out.ng_images = garments.meta.n_test;
  out.ng_preds = fix.arrays["ng.pred"].length;
  out.ng_dataset = garments.meta.dataset;
  return out;
}

window.parity = run().then((r) => {
  document.getElementById("status").textContent = "done";
  return r;
});
