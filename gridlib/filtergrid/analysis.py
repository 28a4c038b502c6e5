"""Measurements for the chapters: gradient agreement of SnAP-1 and exact RTRL with BPTT."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.cell import GridParams
from gridlib.filtergrid.grid import init_params
from gridlib.filtergrid.rtrl import rtrl_grads
from gridlib.filtergrid.snap1 import snap1_grads

GROUPS = GridParams._fields


def _relative_errors(keys, xs, n, m, mode):
    """Per-group ``|g - g_bptt| / |g_bptt|`` of SnAP-1 and RTRL for a batch of random problems."""

    def one(key, x):
        p = init_params(key, n, m, tau_min=5e-3, tau_max=200e-3, dtype=x.dtype)
        label = jax.random.randint(key, (), 0, m)
        g_b, g_s, g_r = (f(p, x, label, mode)[2] for f in (bptt_grads, snap1_grads, rtrl_grads))

        def rel(g):
            return jnp.stack([jnp.linalg.norm(a - b) / jnp.linalg.norm(b)
                              for a, b in zip(g, g_b, strict=True)])

        return rel(g_s), rel(g_r)

    return jax.vmap(one)(keys, xs)


def gradient_agreement(ts=(1, 5, 20, 100), n_draws: int = 10, n: int = 4, m: int = 4,
                       mode: str = "sum", seed: int = 0) -> dict:
    """The original gradient check, extended: 4x4 grid, float64, tau in [5, 200] ms, inputs
    0.5 N(0,1). Returns ``{T: {"snap1/<group>": median rel. error, "rtrl/max": max rel. error}}``
    over ``n_draws`` random problems per ``T``. Needs ``jax_enable_x64``."""
    if not jax.config.jax_enable_x64:
        raise ValueError("gradient_agreement measures float64 agreement: enable jax_enable_x64")
    if n_draws < 1 or min(ts) < 1:
        raise ValueError(f"need n_draws >= 1 and every T >= 1, got {n_draws}, {ts}")
    fn = jax.jit(_relative_errors, static_argnums=(2, 3, 4))
    out = {}
    for t in ts:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), t)
        keys = jax.random.split(key, n_draws)
        xs = 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (n_draws, t, n), jnp.float64)
        e_snap, e_rtrl = (np.asarray(z) for z in fn(keys, xs, n, m, mode))
        row = {f"snap1/{g}": float(np.median(e_snap[:, q])) for q, g in enumerate(GROUPS)}
        row["rtrl/max"] = float(e_rtrl.max())
        out[int(t)] = row
    return out


def _register() -> None:
    from gridlib.cli import experiment

    @experiment("filtergrid-agreement")
    def filtergrid_agreement(n_draws: int = 10, seed: int = 0) -> dict:
        """SnAP-1 and exact RTRL vs BPTT on a 4x4 grid in float64 at T = 1, 5, 20, 100."""
        from gridlib import results

        jax.config.update("jax_enable_x64", True)
        table = gradient_agreement(n_draws=n_draws, seed=seed)
        results.save("filtergrid/gradient_agreement", config={"n_draws": n_draws, "grid": [4, 4],
                     "tau_ms": [5, 200], "input": "0.5 N(0,1)", "loss": "sum"},
                     metrics={str(k): v for k, v in table.items()}, seed=seed)
        return table


_register()
