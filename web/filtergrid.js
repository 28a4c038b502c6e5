// The analog-filter grid in plain JavaScript (float64, like the library's x64 runs).
// Same equations and names as gridlib/filtergrid/{cell,model,snap1,snap0}.py; each function's
// comment names the library function it mirrors. Grid arrays are flat, cell k = i * M + j
// (row i, column j); per-step arrays are (T, N, M) flat, index (t * N + i) * M + j.

export const DT = 1e-3; // gridlib.filtergrid.cell.DT
export const FIELDS = ["log_tau", "w_left", "w_top", "bias"]; // GridParams' order

// gridlib.filtergrid.cell.zoh_coefficients: a = exp(-dt/tau), c = -expm1(-dt/tau).
export function zoh_coefficients(log_tau, dt = DT) {
  const a = new Float64Array(log_tau.length);
  const c = new Float64Array(log_tau.length);
  for (let k = 0; k < log_tau.length; k++) {
    const x = dt * Math.exp(-log_tau[k]);
    a[k] = Math.exp(-x);
    c[k] = -Math.expm1(-x);
  }
  return { a, c };
}

// gridlib.filtergrid.cell.cell_step: one ZOH step of one cell, returns s (y = tanh(s + b)).
export function cell_step(s_prev, u, v, a, c, w_left, w_top) {
  return a * s_prev + c * (w_left * u + w_top * v);
}

// gridlib.filtergrid.experiments.image_rows: 784 pixel bytes k -> drives xs (T, N),
// x_t[i] = (k / 256) * gain * pixel_scale for pixel (row t, column i).
export function image_rows(pixels, gain, pixel_scale, n = 28) {
  const scale = gain * pixel_scale;
  const xs = new Float64Array(pixels.length);
  for (let p = 0; p < pixels.length; p++) xs[p] = (pixels[p] / 256) * scale;
  return { xs, t_len: pixels.length / n };
}

// gridlib.filtergrid.model.forward (+ readout): the grid over xs (T, N) from rest.
// Returns y (T, N, M) and the readout r (T, M) = bottom row of y.
export function forward(params, xs, t_len, n, m, dt = DT) {
  const { a, c } = zoh_coefficients(params.log_tau, dt);
  const { w_left, w_top, bias } = params;
  const nm = n * m;
  const y = new Float64Array(t_len * nm);
  const s = new Float64Array(nm);
  const r = new Float64Array(t_len * m);
  for (let t = 0; t < t_len; t++) {
    const yt = t * nm;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const k = i * m + j;
        const u = j > 0 ? y[yt + k - 1] : xs[t * n + i];
        const v = i > 0 ? y[yt + k - m] : 0;
        s[k] = cell_step(s[k], u, v, a[k], c[k], w_left[k], w_top[k]);
        y[yt + k] = Math.tanh(s[k] + bias[k]);
      }
    }
    for (let j = 0; j < m; j++) r[t * m + j] = y[yt + (n - 1) * m + j];
  }
  return { y, r };
}

// gridlib.filtergrid.model.predict / the logits: sum_t r(t).
export function logits_of(r, t_len, m) {
  const l = new Float64Array(m);
  for (let t = 0; t < t_len; t++) for (let j = 0; j < m; j++) l[j] += r[t * m + j];
  return l;
}

export function argmax(v) {
  let best = 0;
  for (let j = 1; j < v.length; j++) if (v[j] > v[best]) best = j;
  return best;
}

// gridlib.filtergrid.model.loss_from_readout ("sum"): cross-entropy of softmax(sum_t r(t)),
// and its gradient dL/dr(t) = softmax - onehot (the same for every t).
export function loss_head(logits, label) {
  let mx = -Infinity;
  for (const l of logits) mx = Math.max(mx, l);
  let z = 0;
  for (const l of logits) z += Math.exp(l - mx);
  const lse = mx + Math.log(z);
  const dr = new Float64Array(logits.length);
  for (let j = 0; j < logits.length; j++) dr[j] = Math.exp(logits[j] - lse) - (j === label ? 1 : 0);
  return { loss: lse - logits[label], dr };
}

// Scratch arrays of one grid size, reused by every example (no allocation per example).
export class Workspace {
  constructor(t_len, n, m) {
    const nm = n * m;
    Object.assign(this, { t_len, n, m, nm });
    this.y = new Float64Array(t_len * nm);
    this.f = new Float64Array(4 * t_len * nm); // output sensitivities (4, T, N, M)
    this.s = new Float64Array(nm);
    this.e_left = new Float64Array(nm);
    this.e_top = new Float64Array(nm);
    this.eta = new Float64Array(nm);
    this.msg = new Float64Array(nm);
    this.gm = new Float64Array(nm);
    this.lam_b = new Float64Array(nm);
    this.lam_r = new Float64Array(nm);
    this.logits = new Float64Array(m);
  }
}

// Per-parameter coefficients shared by every example of a step.
export function coefficients(params, n, m, dt = DT) {
  const { a, c } = zoh_coefficients(params.log_tau, dt);
  const nm = n * m;
  const tau = new Float64Array(nm);
  const eta_gain = new Float64Array(nm);
  // gridlib.filtergrid.snap1.descendant_coefficients: c_d kappa_d of the child below
  // (kappa = its w_top) and of the child on the right (kappa = its w_left); 0 where missing
  const couple_b = new Float64Array(nm);
  const couple_r = new Float64Array(nm);
  const a_b = new Float64Array(nm);
  const a_r = new Float64Array(nm);
  for (let k = 0; k < nm; k++) {
    tau[k] = Math.exp(params.log_tau[k]);
    eta_gain[k] = (a[k] * dt) / tau[k] ** 2;
    const i = Math.floor(k / m);
    const j = k % m;
    if (i < n - 1) {
      couple_b[k] = c[k + m] * params.w_top[k + m];
      a_b[k] = a[k + m];
    }
    if (j < m - 1) {
      couple_r[k] = c[k + 1] * params.w_left[k + 1];
      a_r[k] = a[k + 1];
    }
  }
  return { a, c, tau, eta_gain, couple_b, couple_r, a_b, a_r, dt };
}

// The forward pass with the three self-traces (gridlib.filtergrid.cell.self_trace_step) and the
// output sensitivities f (gridlib.filtergrid.cell.output_sensitivities), stored per step.
function forward_traces(params, co, xs, ws) {
  const { t_len, n, m, nm, y, f, s, e_left, e_top, eta, logits } = ws;
  const { a, c, tau, eta_gain } = co;
  const { w_left, w_top, bias } = params;
  s.fill(0); e_left.fill(0); e_top.fill(0); eta.fill(0); logits.fill(0);
  const plane = t_len * nm;
  for (let t = 0; t < t_len; t++) {
    const yt = t * nm;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const k = i * m + j;
        const u = j > 0 ? y[yt + k - 1] : xs[t * n + i];
        const v = i > 0 ? y[yt + k - m] : 0;
        const s_prev = s[k];
        const drive = w_left[k] * u + w_top[k] * v;
        s[k] = a[k] * s_prev + c[k] * (w_left[k] * u + w_top[k] * v);
        const yk = Math.tanh(s[k] + bias[k]);
        y[yt + k] = yk;
        e_left[k] = a[k] * e_left[k] + c[k] * u;
        e_top[k] = a[k] * e_top[k] + c[k] * v;
        eta[k] = a[k] * eta[k] + eta_gain[k] * (s_prev - drive);
        const g = 1.0 - yk ** 2;
        f[yt + k] = g * eta[k] * tau[k];
        f[plane + yt + k] = g * e_left[k];
        f[2 * plane + yt + k] = g * e_top[k];
        f[3 * plane + yt + k] = g;
      }
    }
    for (let j = 0; j < m; j++) logits[j] += y[yt + (n - 1) * m + j];
  }
}

// One example's gradient, added into grad (4 flat arrays). rule: "snap1" or "snap0".
// gridlib.filtergrid.snap1._snap1_core (adjoint traces) and gridlib.filtergrid.snap0.snap0_grads.
function backward(rule, co, label, ws, grad, weight) {
  const { t_len, n, m, nm, y, f, msg, gm, lam_b, lam_r, logits } = ws;
  const { couple_b, couple_r, a_b, a_r } = co;
  const { loss, dr } = loss_head(logits, label);
  const plane = t_len * nm;
  const [g_lt, g_wl, g_wt, g_b] = grad;
  lam_b.fill(0); lam_r.fill(0);
  const snap1 = rule === "snap1";
  for (let t = t_len - 1; t >= 0; t--) {
    const yt = t * nm;
    // gridlib.filtergrid.stepwise.messages: within-step messages in reverse raster order,
    // m_k = dL/dr_k [bottom row] + sum_d m_d (1 - y_d^2) c_d kappa_d
    for (let k = nm - 1; k >= 0; k--) {
      const i = Math.floor(k / m);
      const j = k - i * m;
      const dep = i === n - 1 ? dr[j] : 0;
      const below = i < n - 1 ? gm[k + m] : 0;
      const right = j < m - 1 ? gm[k + 1] : 0;
      const mk = dep + below * couple_b[k] + right * couple_r[k];
      msg[k] = mk;
      gm[k] = mk * (1.0 - y[yt + k] ** 2);
      let mu = mk; // SnAP-0: m_k f_k
      if (snap1) {
        // adjoint cross-traces lam_d(t) = gm_d(t) + a_d lam_d(t + 1); weight of f is
        // dL/dr_k + sum_d lam_d c_d kappa_d (the past-only subtraction folded in)
        lam_b[k] = below + a_b[k] * lam_b[k];
        lam_r[k] = right + a_r[k] * lam_r[k];
        mu = dep + lam_b[k] * couple_b[k] + lam_r[k] * couple_r[k];
      }
      mu *= weight;
      g_lt[k] += mu * f[yt + k];
      g_wl[k] += mu * f[plane + yt + k];
      g_wt[k] += mu * f[2 * plane + yt + k];
      g_b[k] += mu * f[3 * plane + yt + k];
    }
  }
  return loss;
}

export function zeros_like(params) {
  return FIELDS.map((name) => new Float64Array(params[name].length));
}

// gridlib.filtergrid.snap1.snap1_grads / snap0.snap0_grads: (loss, logits, gradient summed over
// time) of one sequence xs (T, N) with an integer label.
export function rule_grads(rule, params, xs, label, t_len, n, m, dt = DT) {
  const ws = new Workspace(t_len, n, m);
  const co = coefficients(params, n, m, dt);
  forward_traces(params, co, xs, ws);
  const grad = zeros_like(params);
  const loss = backward(rule, co, label, ws, grad, 1.0);
  return { loss, logits: Float64Array.from(ws.logits), grad: Object.fromEntries(FIELDS.map((f, q) => [f, grad[q]])) };
}

export const snap1_grads = (...args) => rule_grads("snap1", ...args);
export const snap0_grads = (...args) => rule_grads("snap0", ...args);

// gridlib.filtergrid.snap1.snap1_batch_grads (rule "snap1") and snap0_batch_grads: the batch
// mean of the per-example gradient. batch: array of drives xs (T, N); labels: integers.
export function batch_grads(rule, params, batch, labels, ws, dt = DT) {
  const co = coefficients(params, ws.n, ws.m, dt);
  const grad = zeros_like(params);
  let loss = 0;
  let correct = 0;
  for (let b = 0; b < batch.length; b++) {
    forward_traces(params, co, batch[b], ws);
    correct += argmax(ws.logits) === labels[b] ? 1 : 0;
    loss += backward(rule, co, labels[b], ws, grad, 1.0);
  }
  for (const g of grad) for (let k = 0; k < g.length; k++) g[k] /= batch.length;
  return { loss: loss / batch.length, acc: correct / batch.length,
           grad: Object.fromEntries(FIELDS.map((f, q) => [f, grad[q]])) };
}

// optax.adam(lr) (b1 = 0.9, b2 = 0.999, eps = 1e-8, eps_root = 0): state and one update,
// applied in place (optax.apply_updates).
export function adam_init(params) {
  return { count: 0, mu: zeros_like(params), nu: zeros_like(params) };
}

export function adam_step(params, grad, state, lr, b1 = 0.9, b2 = 0.999, eps = 1e-8) {
  state.count += 1;
  const bc1 = 1 - b1 ** state.count;
  const bc2 = 1 - b2 ** state.count;
  FIELDS.forEach((name, q) => {
    const p = params[name];
    const g = grad[name];
    const mu = state.mu[q];
    const nu = state.nu[q];
    for (let k = 0; k < p.length; k++) {
      mu[k] = (1 - b1) * g[k] + b1 * mu[k];
      nu[k] = (1 - b2) * g[k] ** 2 + b2 * nu[k];
      const update = -lr * ((mu[k] / bc1) / (Math.sqrt(nu[k] / bc2) + eps));
      p[k] = p[k] + update;
    }
  });
}

// Classify every digit of a set (pixels (count, 784) bytes): accuracy of argmax sum_t r(t).
export function accuracy(params, pixels, labels, count, settings) {
  const { n_rows: n, n_cols: m, gain, pixel_scale, dt } = settings;
  let correct = 0;
  for (let d = 0; d < count; d++) {
    const { xs, t_len } = image_rows(pixels.subarray(d * 784, (d + 1) * 784), gain, pixel_scale, n);
    const { r } = forward(params, xs, t_len, n, m, dt);
    correct += argmax(logits_of(r, t_len, m)) === labels[d] ? 1 : 0;
  }
  return correct / count;
}
