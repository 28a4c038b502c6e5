"""The temporal rules on common ground: SnAP-0, SnAP-2, truncated BPTT and online SnAP-1, checked in
float64 against BPTT, exact influence matrices (``jax.jacfwd``), per-step parameter copies
(``jax.jacrev``) and sympy; plus the registry and the state count of every rule."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp

from gridlib.filtergrid import model, temporal
from gridlib.filtergrid.bptt import bptt_grads
from gridlib.filtergrid.online import (
    online_snap1_batch_grads,
    online_snap1_grads,
    online_snap1_init,
    online_snap1_step,
    online_snap1_step_grads,
)
from gridlib.filtergrid.rtrl import flatten
from gridlib.filtergrid.snap0 import snap0_batch_grads, snap0_grads
from gridlib.filtergrid.snap1 import snap1_grads
from gridlib.filtergrid.snap2 import snap2_batch_grads, snap2_grads, snap2_traces
from gridlib.filtergrid.tbptt import tbptt_batch_grads, tbptt_grads

MODES = ("sum", "per_t")


# every check here runs in float64 (tests/conftest.py restores the setting afterwards)
pytestmark = pytest.mark.usefixtures("float64_module")


def _problem(n, m, t, seed=0):
    """Gradient-check init (tau in [5, 200] ms), inputs 0.5 N(0, 1), float64."""
    params = model.init_params(jax.random.PRNGKey(seed), n, m, tau_min=5e-3, tau_max=200e-3,
                               dtype=jnp.float64)
    xs = 0.5 * jax.random.normal(jax.random.PRNGKey(seed + 1), (t, n), jnp.float64)
    return params, xs


@functools.cache
def _both_modes(fn):
    """``fn`` jitted, returning the gradients of both loss modes: ``(g_sum, g_per_t)``."""
    return jax.jit(lambda p, x, lab: tuple(fn(p, x, lab, mode)[2] for mode in MODES))


def _rel(a, b) -> float:
    a, b = flatten(a), flatten(b)
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


SNAP = {0: snap0_grads, 1: snap1_grads, 2: snap2_grads}
TB1 = functools.partial(tbptt_grads, window=1)


HUB = {"bptt": bptt_grads, **{f"snap{n}": fn for n, fn in SNAP.items()}}


# ---------------------------------------------------------------------------------------------
# the within-step messages every step-wise rule shares


@pytest.mark.parametrize("shape", [(4, 3), (3, 5)])  # more rows, more columns
def test_messages_are_the_derivative_of_the_readout_with_respect_to_each_output(shape):
    """``m_k = d(dep . r(t)) / d y_k`` with ``s(t-1)`` fixed, by autodiff through a cell-by-cell
    forward step written out here (an additive ``eps_k`` on each output stands for ``y_k``). A
    message that missed the child below or on the right, or a wrong order of the diagonals,
    fails on every shape with both children."""
    from gridlib.filtergrid.cell import zoh_coefficients
    from gridlib.filtergrid.stepwise import messages

    n, m = shape
    params, xs = _problem(n, m, 1, seed=n + 7 * m)
    s_prev = 0.3 * jax.random.normal(jax.random.PRNGKey(3), (n, m), jnp.float64)
    dep = jax.random.normal(jax.random.PRNGKey(4), (m,), jnp.float64)
    a, c = zoh_coefficients(params.log_tau, model.DT)

    def readout_dot(eps):
        y = {}
        for i in range(n):
            for j in range(m):
                u = xs[0, i] if j == 0 else y[i, j - 1]
                v = y[i - 1, j] if i > 0 else 0.0
                s = a[i, j] * s_prev[i, j] + c[i, j] * (params.w_left[i, j] * u + params.w_top[i, j] * v)
                y[i, j] = jnp.tanh(s + params.bias[i, j]) + eps[i, j]
        return sum(dep[j] * y[n - 1, j] for j in range(m))

    y = jax.jit(model.step)(params, s_prev, xs[0])[1]
    expected = jax.jit(jax.grad(readout_dot))(jnp.zeros((n, m), jnp.float64))
    np.testing.assert_allclose(jax.jit(messages)(params, y, dep), expected, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# SnAP-n: exact within distance n, ordered outside


@pytest.fixture(scope="module")
def hub(float64_module):
    """4 x 4, T = 10, four random problems: BPTT and SnAP-0/1/2 in both loss modes, compiled
    once. Array ``(draw, rule, mode, 4 N M)``, rules in the order of ``HUB``."""

    def one(seed):
        p = model.init_params(jax.random.PRNGKey(seed), 4, 4, tau_min=5e-3, tau_max=200e-3,
                              dtype=jnp.float64)
        xs = 0.5 * jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 1), (10, 4))
        return jnp.stack([jnp.stack([flatten(fn(p, xs, seed % 4, mode)[2]) for mode in MODES])
                          for fn in HUB.values()])

    return np.asarray(jax.jit(jax.vmap(one))(jnp.arange(4)))


@pytest.mark.parametrize("order", [0, 1, 2])
def test_snap_n_is_exact_for_cells_whose_cone_lies_within_distance_n(hub, order):
    """Cell (i, j)'s farthest descendant is at distance (N-1-i) + (M-1-j). Where that is <= n,
    SnAP-n keeps the temporal carry of the whole cone and equals BPTT (4 x 4, T = 10, both
    modes); elsewhere it drops some and does not."""
    rule = list(HUB).index(f"snap{order}")
    for q, mode in enumerate(MODES):
        exact = hub[0, 0, q].reshape(4, 4, 4)  # (type, i, j)
        got = hub[0, rule, q].reshape(4, 4, 4)
        scale = np.abs(exact).max()
        for i in range(4):
            for j in range(4):
                err = np.abs(got[:, i, j] - exact[:, i, j]).max() / scale
                assert (err < 1e-13) if (3 - i) + (3 - j) <= order else (err > 1e-9), (mode, i, j)


@pytest.mark.parametrize("mode", MODES)
def test_snap_rules_are_ordered_by_distance_on_a_4x4_grid(hub, mode):
    """Four random 4 x 4 problems at T = 10: in every draw the relative error against BPTT falls
    SnAP-0 > SnAP-1 > SnAP-2 > 0, and the median by more than 3x per distance kept; the cosine
    to the exact gradient rises likewise."""
    q = MODES.index(mode)
    exact, rules = hub[:, 0, q], hub[:, 1:, q]  # (draw, 4NM), (draw, rule, 4NM)
    rel = np.linalg.norm(rules - exact[:, None], axis=-1) / np.linalg.norm(exact, axis=-1)[:, None]
    cos = (rules * exact[:, None]).sum(-1) / (np.linalg.norm(rules, axis=-1)
                                             * np.linalg.norm(exact, axis=-1)[:, None])
    assert (rel[:, 0] > rel[:, 1]).all() and (rel[:, 1] > rel[:, 2]).all() and (rel[:, 2] > 1e-9).all()
    med, gap = np.median(rel, axis=0), np.median(1 - cos, axis=0)
    assert med[0] > 3 * med[1] > 9 * med[2], med
    assert gap[0] > 3 * gap[1] > 9 * gap[2] > 0, gap


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 2, 20), (1, 3, 7)])
def test_snap2_equals_bptt_where_every_cone_lies_within_distance_2(shape):
    """N + M <= 4: every descendant of every cell is within distance 2, so SnAP-2 is exact at any
    T, in both loss modes (3 x 1 and 1 x 1 have a single class, where the loss is constant; their
    traces are exact by the jacfwd test's argument). SnAP-1 is not (the hub test, cell (2, 2))."""
    params, xs = _problem(*shape, seed=shape[2])
    both = jax.jit(lambda p, x: (_both_modes(bptt_grads)(p, x, 1), _both_modes(snap2_grads)(p, x, 1)))
    exact, snap2 = both(params, xs)
    for q, mode in enumerate(MODES):
        assert _rel(snap2[q], exact[q]) < 1e-12, mode


def test_snap2_traces_are_the_exact_influence_entries():
    """On a 4 x 4 grid, every trace equals ds_d(t)/dtheta_k from jax.jacfwd of the states, at
    every step, for d = k (self-traces), the two neighbours and the three cells at distance 2
    (below-right summed over both paths), whatever lies farther."""
    n = m = 4
    params, xs = _problem(n, m, 5, seed=3)
    traces, jac = jax.jit(lambda p: (snap2_traces(p, xs), jax.jacfwd(lambda q: model.forward(q, xs).s)(p)))(
        params)  # jac: GridParams of (T, N, M, N, M), state index first
    tau = jnp.exp(params.log_tau)
    own = {"log_tau": traces.own.eta * tau, "w_left": traces.own.e_left, "w_top": traces.own.e_top,
           "bias": jnp.zeros_like(traces.own.eta)}
    kept = {(0, 0): own, (1, 0): traces.near.below._asdict(), (0, 1): traces.near.right._asdict(),
            (2, 0): traces.far.below2._asdict(), (0, 2): traces.far.right2._asdict(),
            (1, 1): traces.far.diag._asdict()}
    for name in model.GridParams._fields:
        full = np.asarray(getattr(jac, name))
        for (di, dj), trace in kept.items():
            for i in range(n):
                for j in range(m):
                    expect = full[:, i + di, j + dj, i, j] if i + di < n and j + dj < m else 0.0
                    np.testing.assert_allclose(trace[name][:, i, j], expect, rtol=1e-11, atol=1e-16)
    assert float(jnp.abs(traces.far.diag.w_left[:, 0, 0]).max()) > 0  # nothing vacuous


def _symbolic_step(theta: str):
    """One symbolic step of the cells within distance 2 of (0, 0) (every parent of such a cell is
    one of them). Previous states are unknown functions S_c(theta) of the parameter theta of
    cell (0, 0). Returns (s, y, previous states, theta, a, w_L, w_T) keyed by cell."""
    cells = [(0, 0), (1, 0), (0, 1), (2, 0), (0, 2), (1, 1)]  # raster-compatible order
    sym = lambda name: {c: sp.Symbol(f"{name}_{c[0]}{c[1]}", real=True) for c in cells}
    a, wl, wt, b = sym("a"), sym("wL"), sym("wT"), sym("b")
    x = [sp.Symbol(f"x_{i}", real=True) for i in range(3)]
    th = {"wL": wl, "wT": wt, "a": a, "b": b}[theta][(0, 0)]
    s_prev = {c: sp.Function(f"S_{c[0]}{c[1]}")(th) for c in cells}
    s, y = {}, {}
    for i, j in cells:
        u = x[i] if j == 0 else y[(i, j - 1)]
        v = 0 if i == 0 else y[(i - 1, j)]
        s[(i, j)] = a[(i, j)] * s_prev[(i, j)] + (1 - a[(i, j)]) * (wl[(i, j)] * u + wt[(i, j)] * v)
        y[(i, j)] = sp.tanh(s[(i, j)] + b[(i, j)])
    return s, y, s_prev, th, a, wl, wt


@pytest.mark.parametrize("theta", ["wL", "b", "a"])
def test_distance_2_trace_recursions_match_sympy(theta):
    """With the previous influences J_c(t-1) left as symbols, d s_d(t) / d theta_00 of one
    symbolic step equals the recursions of snap2's docstring for d = below, right, below-below,
    right-right and below-right, the last with both paths (and not with one)."""
    s, y, s_prev, th, a, wl, wt = _symbolic_step(theta)
    jp = {c: sp.Symbol(f"Jp_{c[0]}{c[1]}") for c in s}
    to_symbols = {sp.Derivative(f, th): jp[c] for c, f in s_prev.items()}
    J = {c: sp.diff(s[c], th).subs(to_symbols) for c in s if c != (0, 0)}
    f_k = sp.diff(y[(0, 0)], th).subs(to_symbols)  # dy_k/dtheta_k: the output sensitivity
    g = {c: 1 - y[c] ** 2 for c in s}
    c_ = {c: 1 - a[c] for c in s}
    diag_via_r = c_[(1, 1)] * wt[(1, 1)] * g[(0, 1)] * J[(0, 1)]
    recursion = {
        (1, 0): a[(1, 0)] * jp[(1, 0)] + c_[(1, 0)] * wt[(1, 0)] * f_k,
        (0, 1): a[(0, 1)] * jp[(0, 1)] + c_[(0, 1)] * wl[(0, 1)] * f_k,
        (2, 0): a[(2, 0)] * jp[(2, 0)] + c_[(2, 0)] * wt[(2, 0)] * g[(1, 0)] * J[(1, 0)],
        (0, 2): a[(0, 2)] * jp[(0, 2)] + c_[(0, 2)] * wl[(0, 2)] * g[(0, 1)] * J[(0, 1)],
        (1, 1): a[(1, 1)] * jp[(1, 1)] + c_[(1, 1)] * wl[(1, 1)] * g[(1, 0)] * J[(1, 0)] + diag_via_r,
    }
    for cell_, expr in recursion.items():
        assert sp.expand(J[cell_] - expr) == 0, cell_
    assert sp.expand(J[(1, 1)] - (recursion[(1, 1)] - diag_via_r)) != 0


# ---------------------------------------------------------------------------------------------
# every rule at T = 1


def test_snap0_and_online_snap1_are_exact_at_T1():
    """At T = 1 every J(t-1) is zero, so SnAP-0 equals BPTT on a 4 x 3 grid in both modes (and so
    does online SnAP-1, per_t). This fixes the reading of 'drop the cross-traces': the whole
    past-only bracket goes, not only eps (that reading leaves dL/dr f, zero off the readout row).
    SnAP-2 reduces to SnAP-0 at T = 1 (all its traces start at zero); truncated BPTT at K >= T is
    checked below."""
    params, xs = _problem(4, 3, 1)
    run = jax.jit(lambda p, x: (_both_modes(snap0_grads)(p, x, 1), _both_modes(bptt_grads)(p, x, 1),
                                online_snap1_grads(p, x, 1)[2]))
    snap0, exact, online = run(params, xs)
    for q, mode in enumerate(MODES):
        assert _rel(snap0[q], exact[q]) < 1e-13, mode
    assert _rel(online, exact[1]) < 1e-13
    assert float(jnp.abs(exact[0].w_left[:-1]).max()) > 1e-6  # credit off the readout row


# ---------------------------------------------------------------------------------------------
# truncated BPTT


def _per_step_copy_reference(params, xs, label, windows):
    """``{(mode, K): sum_t sum_{t-K < tau <= t} (dL/dr(t))^T dr(t)/dtheta_tau}`` from jax.jacrev
    with one copy of the parameters per step: independent of tbptt's windows."""
    t_len = xs.shape[0]

    def readouts(theta_seq):
        def body(s, inp):
            p, x = inp
            s, y = model.step(p, s, x)
            return s, y[-1]

        return jax.lax.scan(body, jnp.zeros(params.w_left.shape), (theta_seq, xs))[1]

    copies = jax.tree.map(lambda z: jnp.broadcast_to(z, (t_len, *z.shape)), params)
    r = readouts(copies)
    jac = jax.jacrev(readouts)(copies)  # each (T, M, T, N, M): r(t)_m by the copy of step tau
    t_idx = np.arange(t_len)
    out = {}
    for mode in MODES:
        dr = jax.grad(model.loss_from_readout)(r, label, mode)  # (T, M)
        for k in windows:
            band = (t_idx[None, :] <= t_idx[:, None]) & (t_idx[None, :] > t_idx[:, None] - k)
            out[mode, k] = jax.tree.map(lambda j, dr=dr, band=band: jnp.einsum("tm,tmsij,ts->ij", dr, j, band), jac)
    return out


def test_tbptt_is_the_banded_per_step_gradient_and_bptt_from_K_equal_T():
    """3 x 2 grid, T = 6: truncated BPTT equals the per-step-copy reference for K = 1 and 4
    (K = 4 in both modes); K = T and K > T give BPTT; K = 1 and K = 4 do not."""
    params, xs = _problem(3, 2, 6, seed=2)
    cases = (("sum", 1), ("sum", 4), ("per_t", 4), ("sum", 6), ("per_t", 6), ("sum", 9))

    def everything(p, x):
        got = {(mode, k): tbptt_grads(p, x, 1, mode, window=k)[2] for mode, k in cases}
        return got, _per_step_copy_reference(p, x, 1, (1, 4)), _both_modes(bptt_grads)(p, x, 1)

    got, ref, exact = jax.jit(everything)(params, xs)
    for mode, k in cases:
        if k < 6:
            assert _rel(got[mode, k], ref[mode, k]) < 1e-12, (mode, k)
            assert _rel(got[mode, k], exact[MODES.index(mode)]) > (1e-3 if k == 1 else 1e-9)
        else:
            assert _rel(got[mode, k], exact[MODES.index(mode)]) < 1e-12, (mode, k)
    with pytest.raises(ValueError, match="window K must be an integer >= 1"):
        tbptt_grads(params, xs, 1, window=0)


# ---------------------------------------------------------------------------------------------
# online SnAP-1


def _per_step_losses(params, xs, label):
    r = model.readout(model.forward(params, xs))
    return optax.softmax_cross_entropy_with_integer_labels(r, jnp.broadcast_to(label, r.shape[:1]))


def test_online_snap1_is_the_exact_per_step_gradient_where_snap1_is_exact():
    """On a 1 x 2 grid the gradient of every step's loss, computed within that step, equals the
    exact one: jax.jacrev of the per-step losses over the whole sequence; the sum is BPTT's
    per_t gradient. (2 x 1 has one class: the per-step CE is constant there, so not tested.)"""
    params, xs = _problem(1, 2, 9, seed=5)
    label = 1

    def everything(p, x):
        return (online_snap1_step_grads(p, x, label), _per_step_losses(p, x, label),
                jax.jacrev(_per_step_losses)(p, x, label), online_snap1_grads(p, x, label),
                bptt_grads(p, x, label, "per_t"))

    (losses, steps), exact_losses, exact_steps, online, bptt = jax.jit(everything)(params, xs)
    np.testing.assert_allclose(losses, exact_losses, rtol=1e-13)
    np.testing.assert_allclose(flatten(steps), flatten(exact_steps), rtol=1e-11, atol=1e-15)
    assert abs(float(online[0] - bptt[0])) < 1e-13
    np.testing.assert_allclose(flatten(online[2]), flatten(bptt[2]), rtol=1e-11, atol=1e-15)
    assert float(jnp.abs(flatten(steps)).max()) > 1e-3


def test_online_snap1_is_snap1_of_the_per_step_loss_computed_forwards():
    """On 4 x 3 (SnAP-1 approximate) the online sum equals snap1_grads(mode='per_t'), which
    sweeps the messages backwards after storing the trajectory: the same rule, not the exact
    gradient. Its carry keeps its shapes step after step."""
    params, xs = _problem(4, 3, 7, seed=6)
    run = jax.jit(lambda p, x: (online_snap1_grads(p, x, 2), snap1_grads(p, x, 2, "per_t"),
                                bptt_grads(p, x, 2, "per_t")[2]))
    (loss, logits, grad), (loss_s, logits_s, grad_s), exact = run(params, xs)
    assert abs(float(loss - loss_s)) < 1e-13
    np.testing.assert_allclose(logits, logits_s, atol=1e-13)
    assert _rel(grad, grad_s) < 1e-12
    assert _rel(grad, exact) > 1e-6
    with pytest.raises(ValueError, match="per-step loss"):
        online_snap1_grads(params, xs, 2, "sum")
    with pytest.raises(ValueError, match="per-step loss"):
        online_snap1_batch_grads(params, xs[None], jnp.zeros(1, int), "sum")
    carry = online_snap1_init(params)
    after = jax.eval_shape(lambda c: online_snap1_step(params, c, xs[0], 2)[0], carry)
    assert jax.tree.map(jnp.shape, after) == jax.tree.map(jnp.shape, carry)


# ---------------------------------------------------------------------------------------------
# the hyperplane forms against the step-by-step forms they replace


def _snap0_by_step(params, xs, label, mode):
    """SnAP-0 one time step at a time, as the rule reads: all messages, then a scan over time of
    the self-traces and ``m f``."""
    from gridlib.filtergrid.cell import output_sensitivities, self_trace_step, zero_self_traces
    from gridlib.filtergrid.stepwise import loss_head, messages

    value, logits, traj, dr = loss_head(params, xs, label, mode, model.DT)
    msgs = jax.vmap(messages, in_axes=(None, 0, 0))(params, traj.y, dr)

    def body(carry, inp):
        traces, grad = carry
        s_prev, u, v, y, m = inp
        traces = self_trace_step(traces, s_prev, u, v, params.log_tau, params.w_left, params.w_top)
        f = output_sensitivities(traces, y, params.log_tau)
        return (traces, jax.tree.map(lambda g, fk: g + m * fk, grad, f)), None

    init = (zero_self_traces(params.w_left.shape, xs.dtype), jax.tree.map(jnp.zeros_like, params))
    (_, grad), _ = jax.lax.scan(body, init, (traj.s_prev, traj.u, traj.v, traj.y, msgs))
    return value, logits, grad


def _snap2_by_step(params, xs, label, mode):
    """SnAP-2 one time step at a time: the 23 traces carried forward (snap2_trace_step) and
    snap2_step_gradient added per step, with the messages of every step."""
    from gridlib.filtergrid.snap2 import snap2_init, snap2_step_gradient, snap2_trace_step
    from gridlib.filtergrid.stepwise import loss_head, messages

    value, logits, traj, dr = loss_head(params, xs, label, mode, model.DT)
    msgs = jax.vmap(messages, in_axes=(None, 0, 0))(params, traj.y, dr)

    def body(carry, inp):
        traces, grad = carry
        s_prev, u, v, y, m = inp
        new, f = snap2_trace_step(traces, s_prev, u, v, y, params)
        return (new, jax.tree.map(jnp.add, grad, snap2_step_gradient(m, y, f, traces, params))), None

    init = (snap2_init(params), jax.tree.map(jnp.zeros_like, params))
    (_, grad), _ = jax.lax.scan(body, init, (traj.s_prev, traj.u, traj.v, traj.y, msgs))
    return value, logits, grad


def _tbptt_by_step(params, xs, label, mode, window):
    """Truncated BPTT as defined: tbptt_step reruns each step's window and back-propagates."""
    from gridlib.filtergrid.stepwise import loss_head
    from gridlib.filtergrid.tbptt import tbptt_init, tbptt_step

    value, logits, _, dr = loss_head(params, xs, label, mode, model.DT)

    def body(carry, inp):
        state, grad = carry
        state, g = tbptt_step(params, state, *inp)
        return (state, jax.tree.map(jnp.add, grad, g)), None

    init = (tbptt_init(params, window), jax.tree.map(jnp.zeros_like, params))
    (_, grad), _ = jax.lax.scan(body, init, (xs, dr, jnp.arange(xs.shape[0])))
    return value, logits, grad


#: rule: (windows, loss modes) of every step-wise rule now on hyperplanes (K below, at, past T)
BY_STEP = {"snap0": (None, MODES), "snap2": (None, MODES), "tbptt": ((1, 3, 40), MODES)}
REF = {"snap0": _snap0_by_step, "snap2": _snap2_by_step, "tbptt": _tbptt_by_step}


def _cases(rule):
    windows, modes = BY_STEP[rule]
    return [(mode, k) for mode in modes for k in (windows or (None,))]


def _ref(rule, k):
    return REF[rule] if k is None else functools.partial(REF[rule], window=k)


# (N, M, T) not all equal: more columns, more rows, T = 1, T longer than the grid's depth
SHAPES = [(3, 4, 5), (5, 2, 7), (2, 3, 1), (2, 2, 13)]


@pytest.mark.parametrize("rule", list(BY_STEP))
def test_hyperplane_form_equals_the_step_by_step_form(rule):
    """On four grids (N x M, T) the per-sequence function of each rule gives the loss, the logits
    and the gradient of its step-by-step form, to 1e-10 relative in float64, in every loss mode
    it takes (truncated BPTT at K = 1, 3 and past T). The step-by-step forms are written out
    above from the per-step pieces; a dropped term (a path, an age, an adjoint) breaks this."""
    cases = _cases(rule)

    def both(p, x, lab):
        return [(temporal.rule_grads(rule, k)(p, x, lab, mode), _ref(rule, k)(p, x, lab, mode))
                for mode, k in cases]

    run = jax.jit(both)
    for n, m, t in SHAPES:
        params, xs = _problem(n, m, t, seed=n + 5 * m + 11 * t)
        label = (n + t) % m
        for (mode, k), (got, want) in zip(cases, run(params, xs, label), strict=True):
            where = (rule, mode, k, (n, m, t))
            np.testing.assert_allclose(got[0], want[0], rtol=1e-12, err_msg=str(where))
            np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-14, err_msg=str(where))
            scale = float(jnp.linalg.norm(flatten(want[2])))
            assert float(jnp.linalg.norm(flatten(got[2]) - flatten(want[2]))) <= 1e-10 * scale, where
            if m > 1:  # one column: one class, constant loss, zero gradient
                assert scale > 1e-8, where


@pytest.mark.parametrize("rule", list(BY_STEP))
def test_batched_hyperplane_form_with_chained_lanes(rule):
    """A batch of 8 sequences (4 x 3, T = 5) through the batched function, with 1, 2, 4 and 8
    examples chained per lane and the default, equals the step-by-step form of each sequence,
    averaged: the lanes restart every trace and adjoint at each example's first step."""
    params, _ = _problem(4, 3, 5, seed=9)
    xs = 0.5 * jax.random.normal(jax.random.PRNGKey(10), (8, 5, 4), jnp.float64)
    labels = jnp.arange(8) % 3
    cases = _cases(rule)

    def everything(p, x, lab):
        out = []
        for mode, k in cases:
            fn = temporal.rule_batch_grads(rule, k)
            want = jax.vmap(lambda xi, li, mode=mode, k=k: _ref(rule, k)(p, xi, li, mode))(x, lab)
            got = [fn(p, x, lab, mode, chain=chain) for chain in (1, 2, 4, 8)]
            out.append((got + [fn(p, x, lab, mode)], want))
        return out

    for (mode, k), (gots, (losses, logits, grads)) in zip(cases, jax.jit(everything)(params, xs, labels),
                                                         strict=True):
        mean = jax.tree.map(lambda g: g.mean(0), grads)
        for got in gots:
            np.testing.assert_allclose(got[0], losses, rtol=1e-12, err_msg=f"{rule} {mode} {k}")
            np.testing.assert_allclose(got[1], logits, rtol=1e-12, atol=1e-14)
            assert _rel(got[2], mean) < 1e-10, (rule, mode, k)


# ---------------------------------------------------------------------------------------------
# common ground: registry, batched forms, state counts


def test_state_floats_per_parameter_on_a_4x3_grid():
    """Read off the code's carried structures; 4 x 3 grid: N M = 12 cells, 48 parameters."""
    count = temporal.state_floats_per_parameter
    assert count("snap0", 4, 3) == 3 * 12 / 48  # self-traces
    assert count("snap1", 4, 3) == count("online_snap1", 4, 3) == (3 + 8) * 12 / 48
    assert count("snap2", 4, 3) == (3 + 8 + 12) * 12 / 48
    assert count("rtrl", 4, 3) == 12 * 48 / 48  # J: N M x 4 N M
    assert count("tbptt", 4, 3, window=1) == 0  # the window starts at the network state
    assert count("tbptt", 4, 3, window=4) == (12 + 3 * 4) / 48  # s(t-K) and 3 inputs
    assert count("bptt", 4, 3, t_len=10) == 10 * 12 / 48  # grows with T
    leaves = jax.tree.leaves(temporal.carried_state("snap2", 4, 3))
    assert len(leaves) == 23 and all(x.shape == (4, 3) for x in leaves)


def test_batched_forms_average_over_the_batch():
    """A batch of two copies of one sequence gives that sequence's loss and logits twice and its
    gradient once (a sum would double it), through the registry. The batched forms of SnAP-0,
    SnAP-2 and truncated BPTT share one helper (tbptt's exercises the window keyword); online
    SnAP-1 has its own wrapper."""
    params, xs = _problem(3, 2, 3)
    pair, labels = jnp.stack([xs, xs]), jnp.array([1, 1])
    cases = {"tbptt": ("sum", 2), "online_snap1": ("per_t", None)}

    def everything(p):
        return {rule: (temporal.rule_batch_grads(rule, k)(p, pair, labels, mode),
                       temporal.rule_grads(rule, k)(p, xs, 1, mode)) for rule, (mode, k) in cases.items()}

    for rule, ((losses, logits, grad), (loss, logit, single)) in jax.jit(everything)(params).items():
        np.testing.assert_allclose(losses, [loss, loss], rtol=1e-14, err_msg=rule)
        np.testing.assert_allclose(logits, jnp.stack([logit, logit]), rtol=1e-14, err_msg=rule)
        assert _rel(grad, single) < 1e-14, rule


def test_registry_covers_every_rule_and_refuses_bad_requests():
    assert set(temporal.TEMPORAL_RULES) == {"bptt", "rtrl", "snap0", "snap1", "snap2", "tbptt",
                                            "online_snap1"}
    assert temporal.rule_batch_grads("snap0") is snap0_batch_grads
    assert temporal.rule_batch_grads("snap2") is snap2_batch_grads
    assert temporal.rule_batch_grads("online_snap1") is online_snap1_batch_grads
    assert temporal.rule_batch_grads("tbptt", 2).func is tbptt_batch_grads
    assert temporal.rule_grads("tbptt", 2).keywords == {"window": 2}
    with pytest.raises(ValueError, match="rule must be one of"):
        temporal.rule_grads("eprop")
    with pytest.raises(ValueError, match="window K is required"):
        temporal.rule_grads("tbptt")
    with pytest.raises(ValueError, match="window K is required"):
        temporal.rule_grads("snap2", window=3)
    with pytest.raises(ValueError, match="labels"):
        snap2_batch_grads(*_problem(2, 2, 3), jnp.zeros(2, int))
