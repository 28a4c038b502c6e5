r"""Symbolic (sympy) forms of the GLE operators, their transfer functions and the Euler step.

Used by the derivation chapter and by the tests, which check the numerical library against
these expressions. Convention: a signal :math:`e^{i\omega t}` passes an operator ``O`` as
:math:`\hat O(\omega) e^{i\omega t}`.
"""

from __future__ import annotations

import sympy as sp

omega, t, s = sp.symbols("omega t s", real=True)
tau, tau_m, tau_r, dt = sp.symbols("tau tau_m tau_r dt", positive=True)


def operator_transfers(tau_=tau) -> dict[str, sp.Expr]:
    r"""Transfer functions of the four operators, obtained by acting on :math:`e^{i\omega t}`.

    ``D+ = 1 + tau d/dt``, ``D- = 1 - tau d/dt`` are applied by differentiation; ``I-`` and
    ``I+`` by evaluating their defining integrals
    :math:`\frac1\tau\int_{-\infty}^t e^{-(t-s)/\tau}x(s)ds` and
    :math:`\frac1\tau\int_t^{\infty} e^{-(s-t)/\tau}x(s)ds`.
    """
    x = sp.exp(sp.I * omega * t)
    d_plus = sp.simplify((x + tau_ * sp.diff(x, t)) / x)
    d_minus = sp.simplify((x - tau_ * sp.diff(x, t)) / x)
    # integrate in the lag variable q = t - s (resp. s - t) >= 0; converges for tau > 0
    q = sp.symbols("q", nonnegative=True)
    kern_minus = sp.exp(-q / tau_) * sp.exp(-sp.I * omega * q) / tau_
    kern_plus = sp.exp(-q / tau_) * sp.exp(sp.I * omega * q) / tau_
    i_minus = sp.simplify(sp.integrate(kern_minus, (q, 0, sp.oo), conds="none"))
    i_plus = sp.simplify(sp.integrate(kern_plus, (q, 0, sp.oo), conds="none"))
    return {"D+": d_plus, "D-": d_minus, "I-": i_minus, "I+": i_plus}


def phase(expr: sp.Expr) -> sp.Expr:
    """Phase ``atan(Im/Re)`` of a transfer function (valid where ``Re > 0``, as here)."""
    re, im = sp.re(sp.expand_complex(expr)), sp.im(sp.expand_complex(expr))
    return sp.atan(sp.simplify(im / re))


def amplitude(expr: sp.Expr) -> sp.Expr:
    """Modulus of a transfer function."""
    return sp.simplify(sp.sqrt(sp.simplify(expr * sp.conjugate(expr))))


def gle_transfers() -> dict[str, sp.Expr]:
    r"""The compound transfers of the model.

    ``forward``: :math:`D^+_{\tau_r} I^-_{\tau_m}` (neuron); ``error``:
    :math:`D^+_{\tau_m} I^-_{\tau_r}` (GLE error neuron); ``adjoint``:
    :math:`I^+_{\tau_m} D^-_{\tau_r}` (exact adjoint of the neuron, anti-causal).
    """
    om = operator_transfers(tau_m)
    orr = operator_transfers(tau_r)
    return {
        "forward": sp.simplify(orr["D+"] * om["I-"]),
        "error": sp.simplify(om["D+"] * orr["I-"]),
        "adjoint": sp.simplify(om["I+"] * orr["D-"]),
    }


def euler_step() -> dict[str, sp.Expr]:
    r"""One Euler step of a single GLE neuron with its error neuron, symbolically.

    Symbols: ``u, v`` (old potentials), ``S`` (``W r + b``), ``E`` (instantaneous error
    ``phi' W^T e``), ``gamma``, ``tau_m, tau_r, dt``. Returns ``v_new, e, u_new, u_breve`` and the
    local update directions ``dW_per_r = e`` (times the presynaptic rate), ``dtau = -e u_dot``.
    """
    u, v, S, E, gamma = sp.symbols("u v S E gamma", real=True)
    v_dot = (E - v) / tau_r
    e = v + tau_m * v_dot
    u_dot = (S + gamma * e - u) / tau_m
    return {
        "v_new": v + dt * v_dot,
        "e": e,
        "u_new": u + dt * u_dot,
        "u_breve": u + tau_r * u_dot,
        "u_dot": u_dot,
        "dtau": -e * u_dot,
        "symbols": (u, v, S, E, gamma),
    }


def euler_transfer(tau_int=tau_m, tau_look=tau_r) -> sp.Expr:
    r"""z-domain transfer of the discretised prospective filter, at :math:`z = e^{i\omega dt}`.

    From :math:`x_{n+1} = x_n + \frac{dt}{\tau_{int}}(s_n - x_n)` and
    :math:`y_n = x_n + \frac{\tau_{look}}{\tau_{int}}(s_n - x_n)`, solved with ``sympy``.
    """
    z, X, Sx = sp.symbols("z X S")
    a = dt / tau_int
    rho = tau_look / tau_int
    x_sol = sp.solve(sp.Eq(z * X, X + a * (Sx - X)), X)[0]
    h = sp.simplify((x_sol + rho * (Sx - x_sol)) / Sx)
    return h.subs(z, sp.exp(sp.I * omega * dt))
