"""GLE dynamics against independent references: sympy, naive loops, autodiff backprop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from gridlib import gle
from gridlib.gle import reference, symbolic

# jitted once per config: eager op-by-op dispatch would dominate the test time
step = jax.jit(gle.step, static_argnums=4)


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _net(key, sizes, tau_m, tau_r, dtype):
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(
        gle.make_layer(k, a, b, tau_m, tau_r, dtype=dtype)
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    )


def _random_state(key, net, batch, dtype):
    out = []
    for i, lay in enumerate(net):
        n_out, n_in = lay.W.shape
        ks = jax.random.split(jax.random.fold_in(key, i), 5)
        out.append(
            gle.LayerState(
                *(jax.random.normal(k, (batch, n_out), dtype) for k in ks[:4]),
                jax.random.normal(ks[4], (batch, n_in), dtype),
            )
        )
    return tuple(out)


@pytest.mark.parametrize("prospective", [True, False])
def test_step_matches_naive_loop(x64, prospective):
    key = jax.random.PRNGKey(0)
    net = _net(key, [2, 3, 2], 1.0, 0.3, jnp.float64)
    net = (net[0]._replace(tau_m=jnp.array([1.0, 0.5, 0.7])), net[1])
    cfg = gle.Config(("tanh", "linear"), dt=0.1, gamma=0.4, beta=0.5,
                     prospective_errors=prospective)
    state = _random_state(jax.random.PRNGKey(1), net, 2, jnp.float64)
    x = jnp.array([[0.3, -1.0], [0.7, 0.2]])
    tgt = jnp.array([[1.0, 0.0], [0.0, -1.0]])
    new, grads, so = step(net, state, x, tgt, cfg)
    ref_state, ref_gW, ref_out = reference.naive_step(net, state, x, tgt, cfg.activations, cfg.dt,
                                             cfg.gamma, cfg.beta, prospective)
    np.testing.assert_allclose(so.out, ref_out, atol=1e-13)
    for a, b in zip(new, ref_state, strict=True):
        for f in gle.LayerState._fields:
            np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=1e-12, err_msg=f)
    for g, rg in zip(grads, ref_gW, strict=True):
        np.testing.assert_allclose(g.W, rg, atol=1e-12)


def test_hand_checked_single_neuron():
    """1 -> 1 linear neuron, tau_m = 1, tau_r = 0.5, dt = 0.1, gamma = 0, W = 2, b = 0, x = 1.

    Step 0 from zero state: u_dot = (2 - 0)/1 = 2, u1 = 0.2, u_breve = 0 + 0.5*2 = 1, r1 = 1, and
    the output returned is the old r = 0. Step 1: u_dot = (2 - 0.2)/1 = 1.8, u2 = 0.38,
    u_breve = 0.2 + 0.9 = 1.1. Error with MSE, beta = 1, target 3: at step 0 r' = 0 (no error);
    at step 1 inst_e = (3 - 1)*1 = 2, v_dot = (2 - 0)/0.5 = 4, e = 0 + 1*4 = 4, v2 = 0.4,
    grad W = -e*x = -4.
    """
    lay = gle.Layer(jnp.array([[2.0]]), jnp.zeros(1), jnp.array([1.0]), jnp.array([0.5]))
    cfg = gle.Config(("linear",), dt=0.1, loss="mse")
    st = gle.init_state((lay,), 1)
    x, tgt = jnp.ones((1, 1)), jnp.full((1, 1), 3.0)
    st, g, so = step((lay,), st, x, tgt, cfg)
    assert float(so.out[0, 0]) == 0.0 and float(g[0].W[0, 0]) == 0.0
    np.testing.assert_allclose([st[0].u[0, 0], st[0].r[0, 0]], [0.2, 1.0], rtol=1e-6)
    st, g, so = step((lay,), st, x, tgt, cfg)
    np.testing.assert_allclose(so.out[0, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose([st[0].u[0, 0], st[0].r[0, 0]], [0.38, 1.1], rtol=1e-6)
    np.testing.assert_allclose([so.errors[0][0, 0], st[0].v[0, 0], g[0].W[0, 0]], [4.0, 0.4, -4.0],
                               rtol=1e-6)


def test_step_matches_sympy_euler(x64):
    """The library's update of one neuron equals the symbolic Euler step."""
    sym = symbolic.euler_step()
    u, v, S, E, gamma = sym["symbols"]
    vals = {u: 0.3, v: -0.2, S: 0.9, E: 0.0, gamma: 0.7,
            symbolic.tau_m: 1.3, symbolic.tau_r: 0.4, symbolic.dt: 0.05}
    # a single linear neuron whose top error is E = beta (target - r) r' with r' = 1
    r_old, tgt = 0.25, 0.25 + 1.5
    vals[E] = 1.5
    lay = gle.Layer(jnp.array([[1.0]]), jnp.array([0.9 - 0.5]), jnp.array([1.3]), jnp.array([0.4]))
    st = (gle.LayerState(jnp.array([[0.3]]), jnp.array([[-0.2]]), jnp.array([[r_old]]),
                         jnp.ones((1, 1)), jnp.zeros((1, 1))),)
    cfg = gle.Config(("linear",), dt=0.05, gamma=0.7, beta=1.0, learn_tau=True)
    new, g, so = step((lay,), st, jnp.array([[0.5]]), jnp.array([[tgt]]), cfg)
    ev = {k: float(sym[k].subs(vals)) for k in ("v_new", "e", "u_new", "u_breve", "dtau")}
    np.testing.assert_allclose(new[0].v[0, 0], ev["v_new"], rtol=1e-12)
    np.testing.assert_allclose(so.errors[0][0, 0], ev["e"], rtol=1e-12)
    np.testing.assert_allclose(new[0].u[0, 0], ev["u_new"], rtol=1e-12)
    np.testing.assert_allclose(so.u_breve[0][0, 0], ev["u_breve"], rtol=1e-12)
    # optimiser convention: grad tau = +e u_dot, i.e. the negative of the update direction
    np.testing.assert_allclose(g[0].tau_m[0], -ev["dtau"], rtol=1e-12)


def test_le_pipeline_reaches_feedforward(x64):
    """tau_r = tau_m: no lag at all; the output is the MLP output after one step per layer."""
    net = _net(jax.random.PRNGKey(2), [3, 5, 4, 2], 2.0, 2.0, jnp.float64)
    cfg = gle.Config(("tanh", "tanh", "linear"), dt=0.1)
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 3), jnp.float64)
    xs = jnp.broadcast_to(x, (5, 4, 3))
    _, outs = gle.simulate(net, gle.init_state(net, 4), xs, None, cfg)
    ff = gle.feedforward(net, x, cfg)[-1]
    # the output at step n is r_N^n, which has seen the input after n >= 3 (= depth) steps
    np.testing.assert_allclose(outs[3], ff, atol=1e-13)
    np.testing.assert_allclose(outs[4], ff, atol=1e-13)
    assert not np.allclose(outs[2], ff)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gle_equals_backprop_when_tau_r_equals_tau_m(x64, loss):
    """At tau_r = tau_m the local updates are beta * dL/dtheta from jax.grad (float64)."""
    sizes = [3, 6, 5, 4]
    net = _net(jax.random.PRNGKey(4), sizes, 1.5, 1.5, jnp.float64)
    cfg = gle.Config(("tanh", "tanh", "linear"), dt=0.1, beta=0.3, loss=loss)
    x = jax.random.normal(jax.random.PRNGKey(5), (7, 3), jnp.float64)
    tgt = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(6), (7, 4), jnp.float64))
    n_steps = 2 * len(net) + 1  # forward sweep, then backward sweep, one layer per step
    st = gle.init_state(net, 7)
    for _ in range(n_steps):
        st, grads, _ = step(net, st, x, tgt, cfg)

    def loss_fn(params):
        return cfg.beta * jnp.mean(gle.loss_value(gle.feedforward(params, x, cfg)[-1], tgt, cfg))

    ref = jax.jit(jax.grad(loss_fn))(net)
    for g, rg in zip(grads, ref, strict=True):
        np.testing.assert_allclose(g.W, rg.W, atol=1e-12, rtol=1e-9)
        np.testing.assert_allclose(g.b, rg.b, atol=1e-12, rtol=1e-9)
    if loss == "mse":
        return
    # instantaneous ("BP") errors give the same thing in this special case, at every step
    cfg_bp = cfg._replace(prospective_errors=False)
    xs = jax.random.normal(jax.random.PRNGKey(7), (12, 7, 3), jnp.float64)
    ts = jnp.broadcast_to(tgt, (12, 7, 4))
    _, (so1, g1) = gle.simulate(net, gle.init_state(net, 7), xs, ts, cfg, record=True)
    _, (so2, g2) = gle.simulate(net, gle.init_state(net, 7), xs, ts, cfg_bp, record=True)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


def _sinusoid_response(values, omega, dt, n_periods_skip=3):
    n = values.shape[0]
    tt = np.arange(n) * dt
    skip = int(n_periods_skip * 2 * np.pi / omega / dt)
    basis = np.exp(-1j * omega * tt[skip:])
    return 2 * np.mean(values[skip:] * basis) / 1.0


@pytest.mark.parametrize("omega", [0.5, 2.0])
def test_frequency_response_forward_and_error(x64, omega):
    """Forward gain/phase = Euler transfer exactly; = (1+iw tau_r)/(1+iw tau_m) up to O(dt).

    The error path of the same neuron follows (1+iw tau_m)/(1+iw tau_r).
    """
    dt, tm, tr = 0.01, 1.0, 0.2
    period = 2 * np.pi / omega
    n = int(round(13 * period / dt))
    n = int(round(np.floor(n * dt / period) * period / dt))  # whole periods for the projection
    tt = np.arange(n) * dt
    drive = np.cos(omega * tt)
    lay = gle.Layer(jnp.ones((1, 1)), jnp.zeros(1), jnp.array([tm]), jnp.array([tr]))
    cfg = gle.Config(("linear",), dt=dt, loss="mse", beta=1.0)
    xs = jnp.asarray(drive)[:, None, None]
    # MSE target = drive, and with W = 0 the rate stays 0: the error input is the drive itself
    lay0 = lay._replace(W=jnp.zeros((1, 1)))
    _, (so, _) = gle.simulate((lay,), gle.init_state((lay,), 1), xs, None, cfg, record=True)
    _, (so_e, _) = gle.simulate((lay0,), gle.init_state((lay0,), 1), jnp.zeros_like(xs), xs, cfg,
                                record=True)
    h_fwd = _sinusoid_response(np.asarray(so.u_breve[0][:, 0, 0]), omega, dt)
    # the target enters the error at the same step (r = 0, r' = 1 after the first step)
    h_err = _sinusoid_response(np.asarray(so_e.errors[0][:, 0, 0]), omega, dt)
    exact_f = gle.euler_transfer(omega, dt, tm, tr)
    exact_e = gle.euler_transfer(omega, dt, tr, tm)
    np.testing.assert_allclose(h_fwd, exact_f, atol=2e-3)
    np.testing.assert_allclose(h_err, exact_e, atol=2e-3)
    np.testing.assert_allclose(h_fwd, gle.forward_transfer(omega, tm, tr), atol=0.03)
    np.testing.assert_allclose(h_err, gle.error_transfer(omega, tm, tr), atol=0.05)


def test_operators_against_sympy():
    ops = symbolic.operator_transfers()
    for name, expr in ops.items():
        f = sp.lambdify((symbolic.omega, symbolic.tau), expr)
        for w, ta in [(0.3, 1.0), (2.0, 0.4), (7.0, 1.7)]:
            np.testing.assert_allclose(complex(f(w, ta)), gle.transfer(name, w, ta), rtol=1e-12)
    tr = symbolic.gle_transfers()
    args = (symbolic.omega, symbolic.tau_m, symbolic.tau_r)
    for name, fn in [("forward", gle.forward_transfer), ("error", gle.error_transfer),
                     ("adjoint", gle.adjoint_transfer)]:
        f = sp.lambdify(args, tr[name])
        np.testing.assert_allclose(complex(f(1.3, 1.0, 0.2)), fn(1.3, 1.0, 0.2), rtol=1e-12)
    # same phase, inverse amplitude
    w = np.linspace(0.01, 20, 50)
    e, a = gle.error_transfer(w, 1.2, 0.2), gle.adjoint_transfer(w, 1.2, 0.2)
    np.testing.assert_allclose(np.angle(e), np.angle(a), atol=1e-12)
    np.testing.assert_allclose(np.abs(e) * np.abs(a), 1.0, rtol=1e-12)
    # the discrete scheme's transfer: library formula = sympy solution
    f = sp.lambdify((symbolic.omega, symbolic.dt, symbolic.tau_m, symbolic.tau_r),
                    symbolic.euler_transfer())
    np.testing.assert_allclose(complex(f(1.1, 0.2, 1.2, 0.2)), gle.euler_transfer(1.1, 0.2, 1.2, 0.2),
                               rtol=1e-12)


def test_low_pass_step_response(x64):
    dt, tau = 0.01, 0.5
    xs = jnp.ones((300, 1))
    y = np.asarray(gle.low_pass(xs, tau, dt))[:, 0]
    t = (np.arange(300) + 1) * dt
    np.testing.assert_allclose(y, 1 - np.exp(-t / tau), atol=1e-12)


def test_dtypes_are_preserved():
    for dtype in (jnp.float32,):
        net = _net(jax.random.PRNGKey(0), [2, 3], 1.0, 0.5, dtype)
        cfg = gle.Config(("tanh",), dt=0.1)
        st, g, so = step(net, gle.init_state(net, 2), jnp.ones((2, 2), dtype),
                             jnp.zeros((2, 3), dtype), cfg)
        assert all(a.dtype == dtype for a in jax.tree.leaves((st, g, so)))


def test_float64_dtype(x64):
    net = _net(jax.random.PRNGKey(0), [2, 3], 1.0, 0.5, jnp.float64)
    cfg = gle.Config(("tanh",), dt=0.1)
    st, g, so = step(net, gle.init_state(net, 2), jnp.ones((2, 2)), jnp.zeros((2, 3)), cfg)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves((st, g, so)))


def test_bad_configs_fail_clearly():
    net = _net(jax.random.PRNGKey(0), [2, 3, 1], 1.0, 0.5, jnp.float32)
    ok = gle.Config(("tanh", "linear"), dt=0.1)
    gle.validate(net, ok)
    with pytest.raises(ValueError, match="below dt"):
        gle.validate(net, ok._replace(dt=0.7))
    with pytest.raises(ValueError, match="one per layer"):
        gle.validate(net, ok._replace(activations=("tanh",)))
    with pytest.raises(ValueError, match="unknown activation"):
        gle.validate(net, ok._replace(activations=("relu6", "linear")))
    with pytest.raises(ValueError, match="unknown loss"):
        gle.validate(net, ok._replace(loss="hinge"))
    with pytest.raises(ValueError, match="dt must be positive"):
        gle.validate(net, ok._replace(dt=0.0))
    with pytest.raises(ValueError, match="expects 2 inputs"):
        gle.validate((net[0], net[0]), ok)
    with pytest.raises(ValueError, match="unknown operator"):
        gle.transfer("D0", 1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        gle.make_layer(jax.random.PRNGKey(0), 0, 3, 1.0, 1.0)


def test_the_schedule_sentence_finds_where_the_learning_rate_reaches_its_floor():
    from gridlib.gle import summary

    lr = np.array([[1e-3, 1e-3], [5e-4, 1e-3], [2.5e-4, 5e-4], [2.5e-4, 2.5e-4], [2.5e-4, 2.5e-4]])
    acc = np.array([[0.5, 0.5], [0.6, 0.6], [0.7, 0.7], [0.8, 0.7], [0.8, 0.72]])
    text = summary.schedule_text({"e2e15k": {"lr": lr, "acc": acc}, "static": None})
    # the median over seeds of the first epoch at the floor (indexes 2 and 3): epoch 3
    assert "stops at $2.5 \\times 10^{-4}$" in text and "by epoch 3 (end-to-end GLE, 15k);" in text
    assert text.endswith("to epoch 5 the mean test accuracy moves by +6.00 points."), text
    assert summary.schedule_text({"static": None}) == ""
