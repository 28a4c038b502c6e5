"""Equilibrium propagation (EP) for layered Hopfield-like networks (Scellier & Bengio 2017).

A network of clamped input ``x``, hidden layers and output ``y`` relaxes to a minimum of its
energy ``F = E + beta C`` by projected gradient steps; EP estimates the gradient of the cost at
the free fixed point from the contrast between a free and a weakly nudged relaxation.

- :mod:`~gridlib.ep.model`         config (every option a checked ``Literal``), parameters and
  training state, energy, cost, explicit forces, the relaxation and the free phase
- :mod:`~gridlib.ep.equilibrium`   the EP rules: the contrast, one-sided and symmetric (centered)
  EP, the sign of the nudge
- :mod:`~gridlib.ep.bptt`          backprop through the free relaxation (the gradient reference)
  and why it stalls at the clip
- :mod:`~gridlib.ep.rbp`           recurrent backprop (Almeida-Pineda) at the fixed point
- :mod:`~gridlib.ep.seed_variants` the seed notebook's energy and data-pipeline failures
- :mod:`~gridlib.ep.reference`     naive autodiff relaxation and update, per example (tests and
  the benchmark)
- :mod:`~gridlib.ep.summary`       what the EP chapters load and show, checked against the configuration
  the prose describes
- :mod:`~gridlib.ep.experiments`   the training task for ``fit`` and the ``python -m gridlib
  ep-mnist`` / ``ep-seed-failures`` / ``ep-bptt-sweep`` commands (not imported here)

Example:
    A 4-6-3 network with small weights and biases near 1/2 (its fixed point lies inside
    the clip's bounds, where the theory holds): relax it freely, then estimate the gradient
    by EP and compare with backprop through the same relaxation. The one-sided error
    shrinks with ``beta``; the centered (symmetric) estimate's shrinks with ``beta**2``.

    >>> import jax, jax.numpy as jnp
    >>> from jax.flatten_util import ravel_pytree
    >>> from gridlib import ep
    >>> cfg = ep.EPConfig(sizes=(4, 6, 3), alphas=(0.1, 0.1))
    >>> params = ep.init_params(jax.random.PRNGKey(0), cfg.sizes, gain=0.3,
    ...                         bias=0.5)
    >>> x = jax.random.uniform(jax.random.PRNGKey(1), (8, 4))  # a batch of 8
    >>> target = ep.one_hot(jnp.arange(8) % 3, 3)
    >>> free = ep.free_phase(params, x, cfg, n_steps=100)  # the free phase
    >>> g_ep, _ = ep.ep_gradient(params, x, target, free, 0.01, cfg, n_nudge=100)
    >>> g_sym = ep.symmetric_gradient(params, x, target, free, 0.01, cfg,
    ...                               n_nudge=100)
    >>> g_bp = ep.bptt_gradient(params, x, target, cfg, n_steps=100)
    >>> def rel_err(g, ref):
    ...     g, ref = ravel_pytree(g)[0], ravel_pytree(ref)[0]
    ...     return float(jnp.linalg.norm(g - ref) / jnp.linalg.norm(ref))
    >>> print(f"one-sided {rel_err(g_ep, g_bp):.2f}")  # beta = 0.01
    one-sided 0.03
    >>> rel_err(g_sym, g_bp) < 0.1 * rel_err(g_ep, g_bp)
    True
"""

from gridlib.ep.bptt import bptt_gradient, pinned_target_fraction
from gridlib.ep.equilibrium import contrast, ep_gradient, sample_beta, symmetric_gradient
from gridlib.ep.model import (
    EPConfig,
    EPState,
    Params,
    check_config,
    cost,
    energy,
    forces,
    free_phase,
    init_params,
    input_drive,
    loss_after_relaxation,
    one_hot,
    relax,
    relax_step,
    rho_clip,
    rho_fn,
    total_energy,
    zero_states,
)
from gridlib.ep.rbp import rbp_gradient
from gridlib.ep.seed_variants import seed_energy, seed_variant_splits

__all__ = [
    "EPConfig",
    "EPState",
    "Params",
    "bptt_gradient",
    "check_config",
    "contrast",
    "cost",
    "energy",
    "ep_gradient",
    "forces",
    "free_phase",
    "init_params",
    "input_drive",
    "loss_after_relaxation",
    "one_hot",
    "pinned_target_fraction",
    "rbp_gradient",
    "relax",
    "relax_step",
    "rho_clip",
    "rho_fn",
    "sample_beta",
    "seed_energy",
    "seed_variant_splits",
    "symmetric_gradient",
    "total_energy",
    "zero_states",
]
