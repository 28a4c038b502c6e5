"""SnAP-1 with imperfect measurements (gridlib.filtergrid.perturb).

What each test would catch:
- every knob at its identity value is the exact SnAP-1 rule (a knob that leaks into the rule
  when it should be off, or a rewrite of the rule that is not SnAP-1);
- each knob away from identity changes the gradient but never the forward (a knob that is
  silently ignored, or one that perturbs the network's computation instead of the rule);
- the deterministic knobs against a naive raster-order loop written from the equations (a leak
  applied to the self-traces, a gain applied to the unread message, a subtraction gain on the
  wrong term);
- message noise enters linearly (doubling sigma doubles the deviation, same key), and both noises
  are unbiased over many keys (noise that is not zero-mean, or that multiplies);
- weight quantisation is exact at step 0 and rounds to the grid otherwise.
The deterministic knobs are also checked against the original code's own backward pass in
tests/test_filtergrid_anchor.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gridlib.filtergrid import reference
from gridlib.filtergrid.model import init_params
from gridlib.filtergrid.perturb import (
    Perturbation,
    no_perturbation,
    perturbation,
    perturbed_snap1_batch_grads,
    quantise_weights,
)
from gridlib.filtergrid.snap1 import snap1_batch_grads

_snap1 = jax.jit(snap1_batch_grads, static_argnames=("mode", "dt"))

KNOBS = {"leak": 0.2, "gain_pos": 0.8, "gain_neg": 1.25, "subtraction": 0.1, "trace_noise": 0.5,
         "message_noise": 0.5}
F64 = jnp.float64


# every check here runs in float64 (tests/conftest.py restores the setting afterwards)
pytestmark = pytest.mark.usefixtures("float64_module")


@pytest.fixture(scope="module")
def problem(float64_module):
    params = init_params(jax.random.PRNGKey(1), 4, 3, dtype=F64)
    xs = jax.random.normal(jax.random.PRNGKey(2), (3, 7, 4), F64)
    return params, xs, jnp.array([0, 1, 2])


# one compilation serves every knob value: the perturbation is a pytree of arrays
_rule = jax.jit(perturbed_snap1_batch_grads, static_argnames=("mode", "dt"))


def _grad(problem, p, key=0, mode="sum"):
    params, xs, ys = problem
    return _rule(params, xs, ys, p, jax.random.PRNGKey(key), mode)


def _max_rel(a, b):
    return max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(x))) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("mode", ["sum", "per_t"])
def test_identity_is_exact_snap1(problem, mode):
    params, xs, ys = problem
    losses, logits, exact = _snap1(params, xs, ys, mode)
    p_losses, p_logits, got = _grad(problem, no_perturbation(F64), mode=mode)
    np.testing.assert_array_equal(losses, p_losses)
    np.testing.assert_array_equal(logits, p_logits)
    assert _max_rel(exact, got) < 1e-12


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_each_knob_is_a_no_op_at_identity_and_acts_away_from_it(problem, knob):
    params, xs, ys = problem
    losses, logits, exact = _snap1(params, xs, ys)
    # a noise knob at 0.0 still draws the noise (None removes the source): scaled to nothing
    identity = {"trace_noise": 0.0, "message_noise": 0.0}.get(knob, getattr(no_perturbation(F64), knob))
    _, _, at_identity = _grad(problem, perturbation(F64, **{knob: identity}), key=3)
    assert _max_rel(exact, at_identity) < 1e-12
    p_losses, p_logits, moved = _grad(problem, perturbation(F64, **{knob: KNOBS[knob]}), key=3)
    assert _max_rel(exact, moved) > 1e-2  # the rule moved ...
    np.testing.assert_array_equal(losses, p_losses)  # ... the network did not
    np.testing.assert_array_equal(logits, p_logits)


def _naive_perturbed(params, xs, label, p: Perturbation, dt=1e-3):
    """SnAP-1 with the deterministic knobs, one scalar cell at a time (sum loss), from the
    equations in the module docstring: the raster-order loop of ``reference.snap1_grads`` with
    the leak on the cross-trace retention, the gain on every message read, and the subtraction
    gain on the cross-trace inside the past-only bracket."""
    t_len, n = xs.shape
    m = params.w_left.shape[1]
    nb = reference.neighbours(n, m)
    tau = np.exp(np.asarray(params.log_tau).ravel())
    a = np.exp(-dt / tau)
    c = 1.0 - a
    wl, wt = np.asarray(params.w_left).ravel(), np.asarray(params.w_top).ravel()
    b = np.asarray(params.bias).ravel()
    x = np.asarray(xs)
    read = lambda v: float(p.gain_pos) * v if v > 0 else float(p.gain_neg) * v  # noqa: E731
    s = np.zeros(n * m)
    tr = np.zeros((3, n * m))
    eps = np.zeros((2, 4, n * m))
    ys, fs, epss = [], [], []
    for t in range(t_len):
        y = np.zeros(n * m)
        s_new = np.zeros(n * m)
        f = np.zeros((4, n * m))
        for k in range(n * m):
            u = y[nb["left"][k]] if nb["left"][k] >= 0 else x[t, nb["row"][k]]
            v = y[nb["top"][k]] if nb["top"][k] >= 0 else 0.0
            drive = wl[k] * u + wt[k] * v
            s_new[k] = a[k] * s[k] + c[k] * drive
            y[k] = np.tanh(s_new[k] + b[k])
            tr[2, k] = a[k] * tr[2, k] + a[k] * dt / tau[k] ** 2 * (s[k] - drive)
            tr[0, k] = a[k] * tr[0, k] + c[k] * u
            tr[1, k] = a[k] * tr[1, k] + c[k] * v
            g = 1 - y[k] ** 2
            f[:, k] = [g * tr[2, k] * tau[k], g * tr[0, k], g * tr[1, k], g]
        for k in range(n * m):
            for slot, (d_arr, kappa) in enumerate([(nb["below"], wt), (nb["right"], wl)]):
                d = int(d_arr[k])
                if d >= 0:
                    eps[slot, :, k] = a[d] * (1 - float(p.leak)) * eps[slot, :, k] + c[d] * kappa[d] * f[:, k]
        s = s_new
        ys.append(y.copy()), fs.append(f.copy()), epss.append(eps.copy())
    r = np.stack(ys)[:, (n - 1) * m:]
    logits = r.sum(0)
    prob = np.exp(logits - logits.max())
    prob /= prob.sum()
    dr = prob - np.eye(m)[label]
    grad = np.zeros((4, n * m))
    for t in range(t_len):
        y, f, eps = ys[t], fs[t], epss[t]
        msg = np.zeros(n * m)
        msg[(n - 1) * m:] = dr
        for k in reversed(range(n * m)):
            mk = read(msg[k])
            grad[:, k] += mk * f[:, k]
            for slot, (d_arr, kappa) in enumerate([(nb["below"], wt), (nb["right"], wl)]):
                d = int(d_arr[k])
                if d >= 0:
                    past = (1 + float(p.subtraction)) * eps[slot, :, k] - c[d] * kappa[d] * f[:, k]
                    grad[:, k] += read(msg[d]) * (1 - y[d] ** 2) * past
            for nbr, w in ((nb["left"][k], wl[k]), (nb["top"][k], wt[k])):
                if nbr >= 0:
                    msg[nbr] += mk * (1 - y[k] ** 2) * c[k] * w
    return grad.reshape(4, n, m)


def test_deterministic_knobs_against_a_naive_loop(problem):
    params, xs, ys = problem
    p = perturbation(F64, leak=0.15, gain_pos=0.9, gain_neg=1.2, subtraction=-0.08)
    _, _, got = _grad(problem, p)
    want = np.mean([_naive_perturbed(params, xs[i], int(ys[i]), p) for i in range(len(ys))], 0)
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-10, atol=1e-13)


def test_message_noise_enters_linearly(problem):
    _, _, exact = _grad(problem, no_perturbation(F64))
    _, _, one = _grad(problem, perturbation(F64, message_noise=0.1), key=5)
    _, _, two = _grad(problem, perturbation(F64, message_noise=0.2), key=5)
    for e, g1, g2 in zip(exact, one, two, strict=True):
        np.testing.assert_allclose(g2 - e, 2 * (g1 - e), rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("knob", ["trace_noise", "message_noise"])
def test_noise_is_unbiased(problem, knob):
    params, xs, ys = problem
    _, _, exact = _snap1(params, xs, ys)
    p = perturbation(F64, **{knob: 0.5})
    keys = jax.random.split(jax.random.PRNGKey(11), 200)
    many = jax.jit(jax.vmap(lambda k: perturbed_snap1_batch_grads(params, xs, ys, p, k)[2]))(keys)
    for e, g in zip(exact, many, strict=True):
        sem = np.std(g, 0) / np.sqrt(len(keys))
        assert np.all(np.abs(np.mean(g, 0) - e) <= 5 * sem + 1e-12)
        assert np.max(np.std(g, 0)) > 1e-3 * np.max(np.abs(e))  # and it is noise


def test_quantise_weights():
    params = init_params(jax.random.PRNGKey(0), 5, 4)
    for a, b in zip(quantise_weights(params, jnp.float32(0.0)), params, strict=True):
        np.testing.assert_array_equal(a, b)
    q = quantise_weights(params, jnp.float32(0.25))
    for name in ("w_left", "w_top"):
        w, wq = getattr(params, name), getattr(q, name)
        np.testing.assert_allclose(wq / 0.25, np.round(wq / 0.25), atol=1e-6)
        assert np.max(np.abs(wq - w)) <= 0.125 + 1e-6
    np.testing.assert_array_equal(q.log_tau, params.log_tau)
    np.testing.assert_array_equal(q.bias, params.bias)


def test_bad_inputs_are_clear_errors():
    params = init_params(jax.random.PRNGKey(0), 3, 2)
    xs = jnp.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="unknown perturbation knob"):
        perturbation(leek=0.1)
    with pytest.raises(ValueError, match="must be a Perturbation"):
        perturbed_snap1_batch_grads(params, xs, jnp.zeros(2, int), {"leak": 0.1}, jax.random.PRNGKey(0))
