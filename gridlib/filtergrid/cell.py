r"""One analog-filter cell: a leaky integrator with a tanh output, discretised by zero-order hold.

Continuous form, with learnable time constant :math:`\tau = e^{\log\tau}`:

.. math::
    \tau \dot s &= -s + w_L u + w_T v, \\
    y &= \tanh(s + b).

Holding the drive constant over one step of length :math:`\Delta t` (zero-order hold) gives the
exact update

.. math::
    s(t) &= a\, s(t-1) + c\, (w_L u(t) + w_T v(t)), \\
    a &= e^{-\Delta t/\tau},\ c = 1 - a.

Every function here is elementwise, so the same code serves one scalar cell or a whole
``(N, M)`` grid (and a batch on top, via broadcasting or ``vmap``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

DT = 1e-3
"""Time step in seconds (1 ms), as in the original scripts."""


class GridParams(NamedTuple):
    """The four learnable parameters of every cell, each an ``(N, M)`` array (or any common shape).

    The same container also holds anything indexed by parameter type: gradients, the output
    sensitivities ``f``, the cross-traces.
    """

    log_tau: Array
    w_left: Array
    w_top: Array
    bias: Array


def zoh_coefficients(log_tau: Array, dt: float = DT) -> tuple[Array, Array]:
    r"""ZOH retention and input gain: ``a = exp(-dt/tau)``, ``c = 1 - a``, ``tau = exp(log_tau)``.

    ``c`` is computed as ``-expm1(-dt/tau)``, which equals ``1 - a`` without the cancellation
    that plain subtraction suffers when ``tau >> dt``.
    """
    x = dt * jnp.exp(-log_tau)  # dt / tau
    return jnp.exp(-x), -jnp.expm1(-x)


def cell_step(
    s_prev: Array, u: Array, v: Array, log_tau: Array, w_left: Array, w_top: Array, bias: Array,
    dt: float = DT,
) -> tuple[Array, Array]:
    """One ZOH step of a cell (elementwise): returns ``(s, y)``.

    ``u`` is the left input and ``v`` the top input *of the same time step*;
    ``s = a s_prev + c (w_left u + w_top v)``, ``y = tanh(s + bias)``.
    """
    a, c = zoh_coefficients(log_tau, dt)
    s = a * s_prev + c * (w_left * u + w_top * v)
    return s, jnp.tanh(s + bias)


class SelfTraces(NamedTuple):
    r"""The three self-traces of a cell: exact partial derivatives of its own state.

    Attributes:
        e_left: :math:`\partial s / \partial w_L` (through the cell's own history only).
        e_top: :math:`\partial s / \partial w_T`.
        eta: :math:`\partial s / \partial \tau` (with respect to :math:`\tau`, not
            :math:`\log\tau`; multiply by :math:`\tau` for the latter).
    """

    e_left: Array
    e_top: Array
    eta: Array


def zero_self_traces(shape: tuple[int, ...], dtype=jnp.float32) -> SelfTraces:
    """All-zero self-traces (every sequence starts from rest)."""
    z = jnp.zeros(shape, dtype)
    return SelfTraces(z, z, z)


def self_trace_step(
    traces: SelfTraces, s_prev: Array, u: Array, v: Array, log_tau: Array, w_left: Array,
    w_top: Array, dt: float = DT,
) -> SelfTraces:
    r"""Advance the self-traces by one step (elementwise).

    .. math::
        e_L(t) &= a e_L(t-1) + c u(t),\\
        e_T(t) &= a e_T(t-1) + c v(t),\\
        \eta(t) &= a \eta(t-1) \\
            &\quad + \frac{a \Delta t}{\tau^2}\,(s(t-1) - \mathrm{drive}(t)),

    since :math:`\partial a/\partial\tau = a\Delta t/\tau^2` and :math:`c = 1-a`.
    """
    a, c = zoh_coefficients(log_tau, dt)
    tau = jnp.exp(log_tau)
    drive = w_left * u + w_top * v
    return SelfTraces(
        e_left=a * traces.e_left + c * u,
        e_top=a * traces.e_top + c * v,
        eta=a * traces.eta + (a * dt / tau**2) * (s_prev - drive),
    )


def output_sensitivities(traces: SelfTraces, y: Array, log_tau: Array) -> GridParams:
    r"""Self-derivatives of the output, :math:`f_\theta = \mathrm{d}y/\mathrm{d}\theta` of the cell's own
    parameters, as a :class:`GridParams` of arrays (one entry per parameter type).

    :math:`f_{w_L} = (1-y^2) e_L`, :math:`f_{w_T} = (1-y^2) e_T`, :math:`f_b = 1-y^2`,
    :math:`f_{\log\tau} = (1-y^2)\,\eta\,\tau` (post-step ``y``).
    """
    g = 1.0 - y**2
    return GridParams(
        log_tau=g * traces.eta * jnp.exp(log_tau),
        w_left=g * traces.e_left,
        w_top=g * traces.e_top,
        bias=g,
    )
