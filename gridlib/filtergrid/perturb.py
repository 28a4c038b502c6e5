r"""SnAP-1 on imperfect hardware: biased and noisy *measurements* of the rule, and quantised weights.

On analog hardware the quantities SnAP-1 reads (the cross-traces :math:`\varepsilon_d`, held on
capacitors, and the backward messages :math:`m`, read out by amplifiers) are neither exact nor
noiseless. :class:`Perturbation` names six such imperfections; :func:`perturbed_snap1_batch_grads`
is SnAP-1 with them applied. The network's forward computation is never touched: only what the
learning rule measures. At the identity values (:func:`no_perturbation`) the result is SnAP-1's.

With :math:`g(m) = \gamma_+ m` for :math:`m > 0` and :math:`\gamma_- m` otherwise, the perturbed
rule reads, per cell :math:`k`, step :math:`t` and parameter :math:`\theta`:

.. math::
    \tilde m_k &= g\big(m_k + \sigma_m \rho(t)\, \xi\big), \\
    m_k &= \textstyle\sum_{d} \tilde m_d (1-y_d^2)\, c_d \kappa_d \;(+\, \partial L/\partial r_k),\\
    \tilde\varepsilon_d(t) &= a_d (1-\delta_\ell)\, \tilde\varepsilon_d(t-1) \\
        &\quad + c_d\kappa_d f_k(t) \\
        &\quad + \sigma_\varepsilon\, \mathrm{rms}\big(\varepsilon(t)\big)\, \xi,\\
    \Delta_t\theta_k &= \tilde m_k f_k \\
        &\quad + \textstyle\sum_d \hat m_d (1-y_d^2) \\
        &\qquad \big[(1+\delta_s)\, \tilde\varepsilon_d(t) - c_d\kappa_d f_k(t)\big],

where every :math:`\xi` is a fresh standard normal; :math:`\hat m_d` is the descendant's
message read once more by its parent (:math:`g(m_d + \text{fresh noise})`); :math:`\rho(t)` is the
RMS over the readout cells of :math:`\partial L/\partial r(t)`; and
:math:`\mathrm{rms}(\varepsilon(t))` is taken, per example and parameter type, over the
cross-traces that exist. Messages are propagated in their perturbed form, so readout errors
compound as they travel up the grid.

This matches the original code's ``Perturbation`` term by term. Its one difference: there, cells
without a descendant keep a cross-trace slot that accumulates noise and enters the RMS. Here
those slots do not exist. The test ``test_perturbed_rule_equals_the_originals`` checks the
deterministic knobs against the original's own backward pass.

Why a second SnAP-1 rather than options of :func:`~gridlib.filtergrid.snap1.snap1_batch_grads`:
the fast path runs the cross-traces backwards as adjoint traces, which is exact only because
the recursion is linear and its weight (the message) is the one that is propagated. Noise whose
scale depends on the traces' own RMS, and messages read twice with independent noise, break both.
So this rule runs the cross-traces forward in time, after the messages are known, as the
original does; it shares the forward sweep with SnAP-1.

:func:`quantise_weights` is the one imperfection of the *forward* computation studied with it:
weights stored at a finite resolution (see its docstring).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from gridlib.filtergrid.cell import DT, GridParams, output_sensitivities
from gridlib.filtergrid.model import check_inputs, check_loss_mode
from gridlib.filtergrid.snap1 import _left, _up, descendant_coefficients, forward_sweep


class Perturbation(NamedTuple):
    """The six measurement imperfections; scalars (or arrays with a leading condition axis).

    Attributes:
        leak: ``delta_leak``: the cross-trace capacitors retain ``a_d (1 - leak)`` per step.
        gain_pos: gain of a message read out when it is positive.
        gain_neg: gain of a message read out when it is negative (equal gains: symmetric).
        subtraction: ``delta_sub``: the cross-trace enters the past-only bracket with gain
            ``1 + delta_sub`` while the same-step term it should cancel keeps gain 1.
        trace_noise: ``sigma_eps``: Gaussian noise added to every cross-trace after every
            update, with std ``sigma_eps`` times the RMS of that parameter type's cross-traces.
        message_noise: ``sigma_m``: Gaussian noise on every message read, with std ``sigma_m``
            times the RMS of ``dL/dr(t)`` over the readout cells.

    A noise knob set to ``None`` removes the noise source: nothing is drawn. (``0.0`` draws the
    noise and scales it by zero, the same numbers at a much higher cost: random numbers are most
    of the price of this rule on a CPU. ``None`` is pytree structure, so it stays static under
    ``jit`` and ``vmap``; conditions with and without noise are stacked separately.)
    """

    leak: Array
    gain_pos: Array
    gain_neg: Array
    subtraction: Array
    trace_noise: Array | None
    message_noise: Array | None


def no_perturbation(dtype=jnp.float32) -> Perturbation:
    """The identity: no leak, unit gains, exact subtraction, no noise sources."""
    z, o = jnp.zeros((), dtype), jnp.ones((), dtype)
    return Perturbation(leak=z, gain_pos=o, gain_neg=o, subtraction=z, trace_noise=None,
                        message_noise=None)


def perturbation(dtype=jnp.float32, **knobs: float | None) -> Perturbation:
    """:func:`no_perturbation` with the named knobs changed, e.g. ``perturbation(leak=0.1)``."""
    unknown = set(knobs) - set(Perturbation._fields)
    if unknown:
        raise ValueError(f"unknown perturbation knob(s) {sorted(unknown)}; "
                         f"the knobs are {Perturbation._fields}")
    return no_perturbation(dtype)._replace(
        **{k: None if v is None else jnp.asarray(v, dtype) for k, v in knobs.items()})


def _read(m: Array, noise: Array, p: Perturbation) -> Array:
    """A message as the hardware reads it: additive noise, then the sign-dependent gain."""
    m = m + noise
    return jnp.where(m > 0, p.gain_pos * m, p.gain_neg * m)


def _normal(key: Array, shape: tuple[int, ...], dtype) -> Array:
    """Standard normals. Drawn with the non-partitionable threefry, which is about 2.5x faster
    on a CPU; the noise is most of this rule's cost, and its stream need not match any other."""
    with jax.threefry_partitionable(False):
        return jax.random.normal(key, shape, dtype)


def _time_major(z: Array, t_len: int) -> Array:
    """``(Q, N, M, B) -> (T, N, M, B)``: cell ``(i, j)`` at time ``t`` lives on stage ``t + i + j``."""
    n, m = z.shape[1:3]
    t, i, j = np.ogrid[:t_len, :n, :m]
    return z[t + i + j, i, j]


def _perturbed_core(params: GridParams, xs: Array, labels: Array, p: Perturbation, key: Array,
                    mode: str, dt: float):
    """Cell-major ``xs: (T, N, B)``; returns losses ``(B,)``, logits ``(B, M)``, summed gradient."""
    t_len, n, n_batch = xs.shape
    m_cols = params.w_left.shape[1]
    sweep = forward_sweep(params, xs, labels, mode, dt)
    n_stages = sweep.y.shape[0]
    key_msg, key_eps = jax.random.split(key)

    # 1. messages, stage by stage backwards, as the hardware reads and passes them on
    (a_b, c_b, k_b), (a_r, c_r, k_r) = descendant_coefficients(params, dt)
    col = lambda z: z[..., None]  # noqa: E731  (N, M) -> (N, M, 1)
    couple_b, couple_r = col(c_b * k_b), col(c_r * k_r)  # c_d kappa_d of each cell's children
    t_of = (np.arange(n_stages)[:, None, None] - np.arange(n)[None, :, None]
            - np.arange(m_cols)[None, None, :])
    valid = ((t_of >= 0) & (t_of < t_len)).astype(xs.dtype)[..., None]  # (Q, N, M, 1)
    if p.message_noise is None:
        xi_q = jnp.zeros((n_stages, 3, 1, 1, 1), xs.dtype)
    else:
        # three reads per cell and step (its own, and once by each parent), drawn for the T valid
        # steps only, then laid out on the stages; std: sigma_m times the RMS of dL/dr(t)
        rho = jnp.sqrt(jnp.mean(sweep.dr**2, axis=1) + 1e-12)  # (T, B)
        xi = _normal(key_msg, (t_len, 3, n, m_cols, n_batch), xs.dtype)
        xi = p.message_noise * xi * rho[:, None, None, None, :]
        tc = np.clip(t_of, 0, t_len - 1)
        xi_q = jnp.moveaxis(xi[tc, :, np.arange(n)[:, None], np.arange(m_cols)], -2, 1)
        xi_q = xi_q * valid[:, None]  # (Q, 3, N, M, B)

    def backward_stage(carry, inp):
        m_next, gm_next, omy2_next = carry  # raw message, read message x (1-y^2), 1-y^2 on q+1
        dep, y, xi = inp
        # children at the same time sit on stage q + 1; they pass on what they read
        m = (_up(gm_next) * couple_b + _left(gm_next) * couple_r).at[-1].add(dep)
        m_read = _read(m, xi[0], p)
        # each parent reads its children's messages once more, with its own noise
        gm_b = _read(_up(m_next), xi[1], p) * _up(omy2_next)
        gm_r = _read(_left(m_next), xi[2], p) * _left(omy2_next)
        omy2 = 1.0 - y**2
        return (m, m_read * omy2, omy2), (m_read, gm_b, gm_r)

    zero = jnp.zeros((n, m_cols, n_batch), xs.dtype)
    _, (m_read, gm_b, gm_r) = jax.lax.scan(
        backward_stage, (zero, zero, zero),
        (sweep.deposit, sweep.y, xi_q), reverse=True)

    # 2. cross-traces forward in time (time-major from here on), and the gradient
    tm = lambda z: _time_major(z, t_len)  # noqa: E731
    traces = jax.tree.map(tm, sweep.traces)
    f = output_sensitivities(traces, tm(sweep.y), col(params.log_tau))  # (T, N, M, B) each
    has_b, has_r = col(_up(jnp.ones((n, m_cols)))), col(_left(jnp.ones((n, m_cols))))
    retain_b, retain_r = col(a_b) * (1.0 - p.leak), col(a_r) * (1.0 - p.leak)
    n_traces = jnp.sum(has_b) + jnp.sum(has_r)

    def trace_step(carry, inp):
        eps_b, eps_r, grad = carry
        f_t, m_t, gb_t, gr_t, k = inp
        eps_b = jax.tree.map(lambda e, fk: retain_b * e + couple_b * fk, eps_b, f_t)
        eps_r = jax.tree.map(lambda e, fk: retain_r * e + couple_r * fk, eps_r, f_t)
        if p.trace_noise is None:
            return _gradient_step(grad, f_t, m_t, gb_t, gr_t, eps_b, eps_r)
        # noise per parameter type, scaled by that type's RMS over both descendants' traces
        keys = jax.random.split(k, 8)

        def noisy(e_b, e_r, kb, kr):
            rms = jnp.sqrt((jnp.sum(has_b * e_b**2, (0, 1)) + jnp.sum(has_r * e_r**2, (0, 1)))
                           / n_traces + 1e-12)
            std = p.trace_noise * rms
            return (e_b + has_b * std * _normal(kb, e_b.shape, e_b.dtype),
                    e_r + has_r * std * _normal(kr, e_r.shape, e_r.dtype))

        pairs = [noisy(*args) for args in zip(eps_b, eps_r, keys[:4], keys[4:], strict=True)]
        eps_b = GridParams(*(pb for pb, _ in pairs))
        eps_r = GridParams(*(pr for _, pr in pairs))
        return _gradient_step(grad, f_t, m_t, gb_t, gr_t, eps_b, eps_r)

    def _gradient_step(grad, f_t, m_t, gb_t, gr_t, eps_b, eps_r):
        sub = 1.0 + p.subtraction
        grad = jax.tree.map(
            lambda g, fk, e_b, e_r: g + m_t * fk + gb_t * (sub * e_b - couple_b * fk)
            + gr_t * (sub * e_r - couple_r * fk),
            grad, f_t, eps_b, eps_r)
        return (eps_b, eps_r, grad), None

    zeros4 = GridParams(zero, zero, zero, zero)
    (*_, grad), _ = jax.lax.scan(
        trace_step, (zeros4, zeros4, zeros4),
        (f, tm(m_read), tm(gm_b), tm(gm_r), jax.random.split(key_eps, t_len)))
    return sweep.losses, sweep.readout.sum(0).T, jax.tree.map(lambda g: g.sum(-1), grad)


def perturbed_snap1_batch_grads(
    params: GridParams, xs: Array, labels: Array, perturbation: Perturbation, key: Array,
    mode: str = "sum", dt: float = DT,
) -> tuple[Array, Array, GridParams]:
    """SnAP-1 with imperfect measurements: ``xs: (B, T, N)``, ``labels: (B,)`` -> ``(losses (B,),
    logits (B, M), gradient averaged over the batch)``.

    ``key`` draws the noise (unused when both noise knobs are 0). With
    :func:`no_perturbation` the result equals
    :func:`~gridlib.filtergrid.snap1.snap1_batch_grads` up to rounding.
    """
    if np.ndim(xs) != 3 or np.shape(labels) != np.shape(xs)[:1]:
        raise ValueError(f"need xs (B, T, N) and labels (B,), got {np.shape(xs)}, {np.shape(labels)}")
    check_inputs(params, xs[0])
    check_loss_mode(mode)
    if not isinstance(perturbation, Perturbation):
        raise ValueError(f"perturbation must be a Perturbation, got {type(perturbation).__name__}")
    losses, logits, grad = _perturbed_core(params, jnp.moveaxis(xs, 0, -1), labels, perturbation,
                                           key, mode, dt)
    return losses, logits, jax.tree.map(lambda g: g / xs.shape[0], grad)


def quantise_weights(params: GridParams, step: Array) -> GridParams:
    """The weights ``w_left``, ``w_top`` rounded to the nearest multiple of ``step`` (0: exact).

    Models synapses stored at a finite resolution: ``b`` bits over ``[-R, R]`` is
    ``step = 2 R / 2**b``. The forward pass and the rule's measurements both see the stored
    (quantised) weights; the optimiser accumulates its updates in a full-precision copy, as a
    digital weight memory beside the analog array would. Time constants and biases are kept
    exact.
    """
    safe = jnp.where(step > 0, step, 1.0)
    q = lambda w: jnp.where(step > 0, safe * jnp.round(w / safe), w)  # noqa: E731
    return params._replace(w_left=q(params.w_left), w_top=q(params.w_top))


__all__ = ["Perturbation", "no_perturbation", "perturbation", "perturbed_snap1_batch_grads",
           "quantise_weights"]
