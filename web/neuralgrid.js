// NeuralGrid inference in plain JavaScript (float64), mirroring gridlib/neuralgrid/model.py.
// Parameters as the export ships them: w_in (D, H), b_in (H), grid.weight and grid.bias (W, H),
// w_out (H, C), b_out (C), flat in C order.

// gridlib.data.load_fashion_mnist's pixels: float32(k) * float32(1/255), rounded to float32
// (the product of two float32 values is exact in float64, so fround rounds it as float32 does).
const INV255 = Math.fround(1 / 255);
export function fashion_pixels(k) {
  return Float64Array.from(k, (v) => Math.fround(v * INV255));
}

// gridlib.neuralgrid.model.normalise: (x - 0.5) / 0.5 of pixels in [0, 1].
export function normalise(x) {
  return x.map((v) => 2.0 * v - 1.0);
}

// gridlib.neuralgrid.model.preact_fast: z_i = w_{i-1} x_{i-1} + w_i x_i + w_{i+1} x_{i+1} + b_i
// (gridlib.neuralgrid.model.neighbour_sum of w * x), zeros beyond the ends.
export function preact_fast(x, w, b, off, h) {
  const u = new Float64Array(h);
  for (let i = 0; i < h; i++) u[i] = w[off + i] * x[i];
  const z = new Float64Array(h);
  for (let i = 0; i < h; i++) {
    const up = i + 1 < h ? u[i + 1] : 0;
    const down = i > 0 ? u[i - 1] : 0;
    z[i] = u[i] + up + down + b[off + i];
  }
  return z;
}

// gridlib.neuralgrid.model.grid_activations + network_apply for one image x (D,) in [0, 1]:
// returns the logits (C,) and every grid neuron's activation (W, H) (column l = layer l).
export function network_apply(p, x, dims) {
  const { n_in, height: h, width: w, n_classes } = dims;
  const xn = normalise(x);
  let a = new Float64Array(h);
  for (let j = 0; j < h; j++) {
    let acc = 0;
    for (let d = 0; d < n_in; d++) acc += xn[d] * p["w_in"][d * h + j];
    a[j] = acc + p["b_in"][j];
  }
  const acts = new Float64Array(w * h);
  for (let l = 0; l < w; l++) {
    const z = preact_fast(a, p["grid.weight"], p["grid.bias"], l * h, h);
    a = z.map(Math.sin); // gridlib.neuralgrid.model.grid_layer (jnp.sin in float64)
    acts.set(a, l * h);
  }
  const logits = new Float64Array(n_classes);
  for (let c = 0; c < n_classes; c++) {
    let acc = 0;
    for (let j = 0; j < h; j++) acc += a[j] * p["w_out"][j * n_classes + c];
    logits[c] = acc + p["b_out"][c];
  }
  return { logits, acts };
}
