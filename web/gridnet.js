// gridnet inference in plain JavaScript (float64, CPU), mirroring gridlib/gridnet/model.py.
// The cube H is (G, G, G) flat, cell (m, n, k) at (m * G + n) * G + k; the image sits in the
// face k = 0, the readout reads the face k = G - 1. Parameters as the export ships them:
// cells.w (27, G, G, G), cells.b, cells.r, embed, ln_g, ln_b (G, G, G), ro_g, ro_b (G^2),
// ro_w (G^2, n_out), ro_c (n_out).

// gridlib.gridnet.cell.OFFSETS: row 9a + 3b + c <-> offset (a - 1, b - 1, c - 1) on (m, n, k).
export const OFFSETS = [];
for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 3; c++) OFFSETS.push([a - 1, b - 1, c - 1]);

// gridlib.gridnet.cell.activation("silu"): z sigmoid(z).
export function silu(z) {
  return z / (1 + Math.exp(-z));
}

// gridlib.gridnet.model.initial_grid: the learned grid E with the normalised, pooled image
// (x - mean) / std written into the face k = 0 at (offset + row, offset + column).
export function initial_grid(p, x, cfg) {
  const { grid: g, pool, offset, mnist_mean, mnist_std } = cfg;
  const h = Float64Array.from(p["embed"]);
  const s = 28 / pool;
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) {
      let acc = 0;
      for (let a = 0; a < pool; a++) for (let b = 0; b < pool; b++) acc += (x[(i * pool + a) * 28 + j * pool + b] - mnist_mean) / mnist_std;
      h[((offset + i) * g + offset + j) * g] = acc / (pool * pool);
    }
  }
  return h;
}

// gridlib.gridnet.blocking.same_block_masks and reference.neighbour_table in one table:
// for every cell u and offset d, the source index (-1: outside the grid) and whether it lies in
// u's block (read the current grid) or across a block boundary (read the frozen grid).
export function neighbour_table(g, block) {
  const n3 = g * g * g;
  const src = new Int32Array(27 * n3);
  const same = new Uint8Array(27 * n3);
  for (let m = 0; m < g; m++) for (let n = 0; n < g; n++) for (let k = 0; k < g; k++) {
    const u = (m * g + n) * g + k;
    OFFSETS.forEach(([dm, dn, dk], d) => {
      const [sm, sn, sk] = [m + dm, n + dn, k + dk];
      const inside = sm >= 0 && sm < g && sn >= 0 && sn < g && sk >= 0 && sk < g;
      src[d * n3 + u] = inside ? (sm * g + sn) * g + sk : -1;
      const sb = (a, b) => Math.floor(a / block) === Math.floor(b / block);
      same[d * n3 + u] = inside && sb(m, sm) && sb(n, sn) && sb(k, sk) ? 1 : 0;
    });
  }
  return { src, same };
}

// gridlib.gridnet.hand_vjp.step_cm (forward): one outer step of `inner` synchronous updates
// X <- X + r phi(b + sum_d W_d source_d), the source from X inside the block, from the
// frozen start-of-step grid H across a block boundary.
export function outer_step(h, p, cfg, table) {
  const n3 = h.length;
  const w = p["cells.w"];
  const b = p["cells.b"];
  const r = p["cells.r"];
  let x = h;
  for (let t = 0; t < cfg.inner; t++) {
    const next = new Float64Array(n3);
    for (let u = 0; u < n3; u++) {
      let z = b[u];
      for (let d = 0; d < 27; d++) {
        const s = table.src[d * n3 + u];
        if (s < 0) continue;
        z += w[d * n3 + u] * (table.same[d * n3 + u] ? x[s] : h[s]);
      }
      next[u] = x[u] + r[u] * silu(z);
    }
    x = next;
  }
  return x;
}

// gridlib.gridnet.model.layer_norm over all entries: (x - mean) / sqrt(var + eps) * g + b.
export function layer_norm(x, gain, bias, eps) {
  let mu = 0;
  for (const v of x) mu += v;
  mu /= x.length;
  let vr = 0;
  for (const v of x) vr += (v - mu) ** 2;
  vr /= x.length;
  const inv = 1 / Math.sqrt(vr + eps);
  return x.map((v, i) => (v - mu) * inv * gain[i] + bias[i]);
}

// gridlib.gridnet.model.forward (and trajectory): logits (n_out,) for one image x (784,) in
// [0, 1], and the grids after every outer step (for the slices the page shows).
export function forward(p, x, cfg, table = neighbour_table(cfg.grid, cfg.block)) {
  const g = cfg.grid;
  let h = initial_grid(p, x, cfg);
  const grids = [h];
  for (let o = 0; o < cfg.outer; o++) {
    h = outer_step(h, p, cfg, table);
    if (cfg.global_norm) h = layer_norm(h, p["ln_g"], p["ln_b"], cfg.ln_eps);
    grids.push(h);
  }
  // gridlib.gridnet.model.readout: face k = G - 1, flattened (m, n), LayerNorm, linear
  const face = new Float64Array(g * g);
  for (let q = 0; q < g * g; q++) face[q] = h[q * g + g - 1];
  const f = layer_norm(face, p["ro_g"], p["ro_b"], cfg.ln_eps);
  const logits = new Float64Array(cfg.n_out);
  for (let c = 0; c < cfg.n_out; c++) {
    let acc = 0;
    for (let q = 0; q < g * g; q++) acc += f[q] * p["ro_w"][q * cfg.n_out + c];
    logits[c] = acc + p["ro_c"][c];
  }
  return { logits, grids };
}
