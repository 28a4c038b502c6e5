"""Online SnAP-1 with an optimiser step at every time step (``online_snap1_batch_learn``), in
float64: at learning rate 0 it is the summed-gradient rule; with SGD it differs from one update per
sequence at second order in the rate; its scan carries nothing per step; its first steps match a
hand computation from ``online_snap1_step``; and it trains through the MNIST task. (The summed
per-step gradient itself is checked in tests/test_filtergrid_rules.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gridlib.filtergrid import model
from gridlib.filtergrid.experiments import (
    MNIST_PIXEL_SCALE,
    make_task,
    per_group_sgd,
    run_name,
    sequences,
)
from gridlib.filtergrid.online import (
    online_snap1_batch_grads,
    online_snap1_batch_learn,
    online_snap1_grads,
    online_snap1_init,
    online_snap1_learn,
    online_snap1_step,
)
from gridlib.filtergrid.rtrl import flatten

pytestmark = pytest.mark.usefixtures("float64_module")


def _problem(n=4, m=3, t=7, b=3, seed=0):
    """A 4 x 3 grid (SnAP-1 approximate), tau in [5, 200] ms, drives 0.5 N(0, 1), float64."""
    params = model.init_params(jax.random.PRNGKey(seed), n, m, tau_min=5e-3, tau_max=200e-3,
                               dtype=jnp.float64)
    xs = 0.5 * jax.random.normal(jax.random.PRNGKey(seed + 1), (b, t, n), jnp.float64)
    labels = jnp.arange(b) % m
    return params, xs, labels


def _learn(opt, params, xs, labels):
    return online_snap1_batch_learn(opt, params, opt.init(params), xs, labels)


def test_at_learning_rate_zero_it_is_the_summed_gradient_rule():
    params, xs, labels = _problem()
    opt = optax.sgd(0.0)

    @jax.jit
    def everything(p, x):
        return (_learn(opt, p, x, labels), online_snap1_batch_grads(p, x, labels),
                online_snap1_learn(opt, p, opt.init(p), x[0], labels[0]),
                online_snap1_grads(p, x[0], labels[0]))

    out, (losses, logits, grad), one, (loss0, logits0, grad0) = everything(params, xs)
    for got, frozen in zip(out.params, params, strict=True):
        np.testing.assert_array_equal(got, frozen)
    np.testing.assert_allclose(out.losses, losses, rtol=1e-13)
    np.testing.assert_allclose(out.logits, logits, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(flatten(out.grad), flatten(grad), rtol=1e-11, atol=1e-16)
    assert one.losses.shape == () and one.logits.shape == logits0.shape
    np.testing.assert_allclose(one.losses, loss0, rtol=1e-13)
    np.testing.assert_allclose(flatten(one.grad), flatten(grad0), rtol=1e-11, atol=1e-16)


def test_with_sgd_it_differs_from_one_update_per_sequence_at_second_order():
    """The 1/T scaling makes the T small steps add up to the one big step to first order in the
    rate: the difference is O(lr^2), so halving lr quarters it."""
    params, xs, labels = _problem()
    grad = jax.jit(online_snap1_batch_grads)(params, xs, labels)[2]

    @jax.jit
    def gap(lr):
        out = _learn(optax.sgd(lr), params, xs, labels)
        once = jax.tree.map(lambda p, g: p - lr * g, params, grad)
        return jnp.linalg.norm(flatten(out.params) - flatten(once))

    step = float(jnp.linalg.norm(flatten(grad)))
    d1, d2, d4 = (float(gap(lr)) for lr in (2e-2, 1e-2, 5e-3))
    assert 0 < d1 < 1e-2 * 2e-2 * step  # far below the step itself
    assert d1 / d2 == pytest.approx(4.0, rel=0.05)
    assert d2 / d4 == pytest.approx(4.0, rel=0.03)


def test_the_scan_carries_nothing_per_step():
    """The carry has the same shapes at T = 5 and T = 50, and the time scan stacks no outputs."""
    params, xs, labels = _problem(t=50, b=2)
    opt = optax.adam(1e-2)

    def run(x):
        return online_snap1_batch_learn(opt, params, opt.init(params), x, labels)

    def scan_carry(x):
        (eqn,) = [e for e in jax.make_jaxpr(run)(x).jaxpr.eqns
                  if e.primitive.name == "scan" and e.params["length"] == x.shape[1]]
        assert eqn.params["num_carry"] == len(eqn.outvars)  # no ys: nothing stacked over T
        return [(v.aval.shape, v.aval.dtype) for v in eqn.outvars]

    short, long = xs[:, :5], xs
    assert scan_carry(short) == scan_carry(long)
    assert jax.eval_shape(run, short) == jax.eval_shape(run, long)
    n_floats = sum(int(np.prod(s)) for s, _ in scan_carry(long))
    b, nm, m = 2, 4 * 3, 3  # state and traces; params, Adam's mu, nu, the gradient sum;
    assert n_floats == 12 * b * nm + 4 * (4 * nm) + 1 + b + b * m  # Adam's count; losses, logits


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_first_steps_update_after_their_gradient(name):
    """Two steps by hand: step 1's gradient at theta_1, an update; step 2's gradient at theta_2
    with the state and traces carried from step 1 (not recomputed, not reset)."""
    params, xs, labels = _problem(t=2, b=2)
    opt = optax.sgd(0.5) if name == "sgd" else optax.adam(0.1)
    steps = jax.vmap(online_snap1_step, in_axes=(None, 0, 0, 0))

    @jax.jit
    def by_hand(params, xs):
        carry = jax.vmap(lambda _: online_snap1_init(params))(labels)
        theta, opt_state, fed = params, opt.init(params), []
        for t in range(2):
            carry, _, _, g = steps(theta, carry, xs[:, t], labels)
            g = jax.tree.map(lambda z: z.mean(0) / 2, g)
            if name == "sgd":
                new = jax.tree.map(lambda p, gi: p - 0.5 * gi, theta, g)
            else:
                updates, opt_state = opt.update(g, opt_state, theta)
                new = optax.apply_updates(theta, updates)
            theta, fed = new, [*fed, g]
        frozen = online_snap1_batch_grads(params, xs, labels)[2]  # both steps at theta_1
        return theta, jax.tree.map(jnp.add, *fed), frozen, _learn(opt, params, xs, labels)

    theta, summed, frozen, out = by_hand(params, xs)
    np.testing.assert_allclose(flatten(out.params), flatten(theta), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(flatten(out.grad), flatten(summed), rtol=1e-12, atol=1e-16)
    assert float(jnp.abs(flatten(out.grad) - flatten(frozen)).max()) > 1e-6


def _bad_optimizer():
    params, xs, labels = _problem(b=2)
    return "adam", params, optax.adam(1e-3).init(params), xs, labels


def _bad_state():
    params, xs, labels = _problem(b=2)
    other = model.init_params(jax.random.PRNGKey(0), 2, 2, dtype=jnp.float64)
    return optax.adam(1e-3), params, optax.adam(1e-3).init(other), xs, labels


def _bad_sgd_state():
    params, xs, labels = _problem(b=2)
    return per_group_sgd(1e-2), params, optax.adam(1e-3).init(params), xs, labels


def _bad_xs():
    params, xs, labels = _problem(b=2)
    return optax.sgd(0.1), params, optax.sgd(0.1).init(params), xs[0], labels


def _bad_labels():
    params, xs, labels = _problem(b=2)
    return optax.sgd(0.1), params, optax.sgd(0.1).init(params), xs, labels[:1]


def _bad_rows():
    params, xs, labels = _problem(b=2)
    return optax.sgd(0.1), params, optax.sgd(0.1).init(params), xs[:, :, :3], labels


@pytest.mark.parametrize("case, match", [
    (_bad_optimizer, "optimizer must be an optax.GradientTransformation"),
    (_bad_state, "opt_state does not match"),
    (_bad_sgd_state, "opt_state does not match"),
    (_bad_xs, r"need xs \(B, T, N\)"),
    (_bad_labels, r"labels \(B,\)"),
    (_bad_rows, r"xs must be \(T, N\)"),
], ids=["optimizer", "state-shapes", "state-structure", "xs", "labels", "rows"])
def test_bad_requests_are_refused_in_one_line(case, match):
    with pytest.raises(ValueError, match=match) as err:
        online_snap1_batch_learn(*case())
    assert "\n" not in str(err.value)


def test_the_mnist_task_trains_with_an_update_at_every_step():
    """make_task(update_every_step=True) is online_snap1_batch_learn on the encoded batch, with
    Adam and per-group SGD; other rules refuse it; its results get their own name."""
    x = jax.random.uniform(jax.random.PRNGKey(3), (2, 5 * 6), jnp.float32)  # MNIST-like
    y = jnp.array([0, 2])
    for opt_name in ("adam", "sgd"):
        task = make_task(rule="online_snap1", optimizer=opt_name, loss_mode="per_t", n_rows=4,
                         n_cols=3, n_inputs=6, update_every_step=True)
        state = task.init(jax.random.PRNGKey(0))
        new, metrics = jax.jit(task.train_step)(state, x, y, jax.random.PRNGKey(1))
        seqs = sequences(state.routing, x, 6, 10.0, MNIST_PIXEL_SCALE)
        opt = optax.adam(3e-3) if opt_name == "adam" else per_group_sgd(1e-2)
        want = jax.jit(lambda s, q, o=opt: online_snap1_batch_learn(o, s.params, s.opt_state, q, y))(
            state, seqs)
        np.testing.assert_allclose(flatten(new.params), flatten(want.params), rtol=1e-6, atol=1e-9)
        assert float(metrics["loss"]) == pytest.approx(float(want.losses.mean()), rel=1e-6)
        assert float(jnp.abs(flatten(new.params) - flatten(state.params)).max()) > 0
    with pytest.raises(ValueError, match="update_every_step needs rule='online_snap1'"):
        make_task(rule="snap1", update_every_step=True)
    with pytest.raises(ValueError, match="update_every_step needs"):
        make_task(rule="online_snap1", loss_mode="sum", update_every_step=True)
    assert run_name("online_snap1", "sgd", 1, 3, 60000, 0) == \
        "filtergrid/online_snap1_sgd_b1_e3_n60000_seed0"
    assert run_name("online_snap1", "sgd", 1, 3, 60000, 0, update_every_step=True) == \
        "filtergrid/online_snap1_everystep_sgd_b1_e3_n60000_seed0"
    assert run_name("snap1", "adam", 32, 10, 60000, 0) == "filtergrid/snap1_adam_b32_e10_n60000_seed0"


def test_the_cli_refuses_per_step_updates_for_other_rules_in_one_line(tmp_results, capsys):
    from gridlib import cli

    assert cli.main(["filtergrid-mnist", "--rule", "snap1", "--update-every-step", "true"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --update-every-step true goes with --rule online_snap1 only (got --rule snap1)"
