"""Equilibrium propagation: math against independent references (sympy, autodiff, loops)."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from gridlib import ep, report
from gridlib.ep import experiments as epx
from gridlib.ep import reference


def _plain(cell: str) -> str:
    """A table cell's text without the key span around its number."""
    ((_, text),) = report.quantities(cell)
    return text


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _flat(tree) -> jnp.ndarray:
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])


def _cos(a, b) -> float:
    a, b = _flat(a), _flat(b)
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def _interior_net(sizes=(6, 5, 4, 3), batch=5, seed=0):
    """A float64 net whose fixed point lies inside (0, 1): small weights, biases near 1/2."""
    k = jax.random.split(jax.random.PRNGKey(seed), 2 * len(sizes) + 2)
    w = tuple(
        0.3 * jax.random.normal(k[i], (a, b), jnp.float64) / np.sqrt(a)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    )
    b = tuple(
        0.3 + 0.05 * jax.random.normal(k[10 + i], (n,), jnp.float64)
        for i, n in enumerate(sizes[1:])
    )
    x = jax.random.uniform(k[-1], (batch, sizes[0]), jnp.float64)
    d = ep.one_hot(jnp.arange(batch) % sizes[-1], sizes[-1]).astype(jnp.float64)
    cfg = ep.check_config(ep.EPConfig(sizes=sizes, alphas=(0.1,) * (len(sizes) - 1)))
    return ep.Params(w, b), x, d, cfg


# ------------------------------------------------------------------------------ energy / sympy


def _sympy_energy(sizes):
    """Symbolic per-example F for generic weights, with rho = identity (states inside (0, 1))."""
    hs = [sp.symbols(f"h{k}_0:{n}") for k, n in enumerate(sizes)]
    ws = [sp.Matrix(a, b, lambda i, j, k=k: sp.Symbol(f"W{k + 1}_{i}_{j}"))
          for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))]
    bs = [sp.symbols(f"b{k + 1}_0:{n}") for k, n in enumerate(sizes[1:])]
    ds = sp.symbols(f"d0:{sizes[-1]}")
    beta, c = sp.symbols("beta c")
    e = sum(sp.Rational(1, 2) * sum(u**2 for u in h) for h in hs)
    for k in range(1, len(sizes)):
        e -= (sp.Matrix([hs[k - 1]]) * ws[k - 1] * sp.Matrix(hs[k]))[0]
        e -= sum(bi * hi for bi, hi in zip(bs[k - 1], hs[k], strict=True))
    f = e + beta * c * sum((y - t) ** 2 for y, t in zip(hs[-1], ds, strict=True))
    return f, hs, ws, bs, ds, beta, c


def test_energy_and_forces_match_sympy(x64):
    sizes = (3, 2, 2)
    f, hs, ws, bs, ds, beta, c = _sympy_energy(sizes)
    rng = np.random.default_rng(0)
    vals = {}
    params = ep.Params(
        tuple(jnp.asarray(rng.normal(size=w.shape)) for w in ws),
        tuple(jnp.asarray(rng.normal(size=len(b))) for b in bs),
    )
    for w, wv in zip(ws, params.weights, strict=True):
        vals.update({w[i, j]: float(wv[i, j]) for i in range(w.rows) for j in range(w.cols)})
    for b, bv in zip(bs, params.biases, strict=True):
        vals.update({s: float(v) for s, v in zip(b, bv, strict=True)})
    states = [rng.uniform(0.05, 0.95, size=n) for n in sizes]
    for h, hv in zip(hs, states, strict=True):
        vals.update({s: float(v) for s, v in zip(h, hv, strict=True)})
    target = np.eye(sizes[-1])[1]
    vals.update({s: float(v) for s, v in zip(ds, target, strict=True)})
    vals.update({beta: 0.7, c: 1.0})
    cfg = ep.EPConfig(sizes=sizes, alphas=(0.1, 0.1))
    x = jnp.asarray(states[0])[None]
    st = tuple(jnp.asarray(h)[None] for h in states[1:])
    t = jnp.asarray(target)[None]
    got = ep.total_energy(params, x, st, t, 0.7, cfg)[0]
    np.testing.assert_allclose(float(got), float(f.subs(vals)), rtol=1e-12)
    # the relaxation force is -dF/ds, for both square-term conventions (states inside (0, 1))
    for square in ("rho", "u"):
        fc = ep.forces(params, ep.input_drive(params, x, cfg), st, t, 0.7, cfg._replace(square=square))
        for k, h in enumerate(hs[1:]):
            want = [-float(sp.diff(f, s).subs(vals)) for s in h]
            np.testing.assert_allclose(np.asarray(fc[k][0]), want, rtol=1e-10, atol=1e-12)


def test_forces_equal_minus_autodiff_including_bounds(x64):
    params, x, d, cfg = _interior_net()
    states = tuple(
        jax.random.uniform(jax.random.PRNGKey(7 + k), (x.shape[0], n), jnp.float64)
        for k, n in enumerate(cfg.sizes[1:])
    )
    # put units exactly on the bounds, where jnp.clip's derivative would be 1/2
    states = (states[0].at[0, :2].set(0.0).at[1, :2].set(1.0), *states[1:])
    grad_f = jax.jit(jax.grad(lambda s, b: jnp.sum(ep.total_energy(params, x, s, d, b, cfg))))
    for beta in (0.0, 0.3, jnp.linspace(-0.5, 0.5, x.shape[0])):
        g = grad_f(states, beta)
        f = ep.forces(params, ep.input_drive(params, x, cfg), states, d, beta, cfg)
        for a, b in zip(g, f, strict=True):
            np.testing.assert_allclose(np.asarray(-a), np.asarray(b), atol=1e-13)
    # inclusive derivative at 0 and 1, zero outside
    dr = jax.vmap(jax.grad(ep.rho_clip))(jnp.array([-0.1, 0.0, 0.5, 1.0, 1.1]))
    np.testing.assert_array_equal(np.asarray(dr), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_square_term_forms_give_identical_dynamics(x64):
    params, x, d, cfg = _interior_net()
    a = ep.free_phase(params, x, cfg, n_steps=30)
    b = ep.free_phase(params, x, cfg._replace(square="u"), n_steps=30)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-14)


def test_hard_sigmoid_is_not_clip():
    rho, drho = ep.rho_fn(ep.EPConfig(rho="hard_sigmoid"))
    u = jnp.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(np.asarray(rho(u)), [0.5, 7 / 12, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(drho(u)), [1 / 6] * 3, rtol=1e-6)
    rc, _ = ep.rho_fn(ep.EPConfig())
    np.testing.assert_allclose(np.asarray(rc(jnp.array([-1.0, 0.3, 2.0]))), [0.0, 0.3, 1.0])


# ------------------------------------------------------------------------------ relaxation


def test_free_relaxation_decreases_energy_and_converges(x64):
    params, x, d, cfg = _interior_net()
    drive = ep.input_drive(params, x, cfg)
    s = ep.zero_states(x.shape[0], cfg.sizes, jnp.float64)

    def step(s, _):
        s = ep.relax_step(params, drive, s, d, 0.0, cfg)
        return s, ep.energy(params, x, s, cfg)

    s, energies = jax.lax.scan(step, s, None, length=300)
    e0 = ep.energy(params, x, ep.zero_states(x.shape[0], cfg.sizes, jnp.float64), cfg)
    diffs = jnp.diff(jnp.concatenate([e0[None], energies]), axis=0)
    assert float(diffs.max()) <= 1e-12, "free relaxation increased the energy"
    s2 = ep.relax_step(params, drive, s, d, 0.0, cfg)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(s, s2, strict=True)) < 1e-12
    assert all(float(h.min()) >= 0 and float(h.max()) <= 1 for h in s)


def test_zero_beta_nudge_is_a_no_op_from_the_fixed_point(x64):
    params, x, d, cfg = _interior_net()
    free = ep.free_phase(params, x, cfg, n_steps=400)
    g, nudged = ep.ep_gradient(params, x, d, free, 0.0, cfg, n_nudge=5, update_beta=1.0)
    for a, b in zip(free, nudged, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    assert float(jnp.abs(_flat(g)).max()) < 1e-10


def test_batch_mean_state_gradient_shrinks_the_step(x64):
    params, x, d, cfg = _interior_net(batch=4)
    drive = ep.input_drive(params, x, cfg)
    s = ep.zero_states(4, cfg.sizes, x.dtype)
    a = ep.relax_step(params, drive, s, d, 0.0, cfg)
    b = ep.relax_step(params, drive, s, d, 0.0, cfg._replace(state_grad="mean"))
    np.testing.assert_allclose(np.asarray(b[0]), np.asarray(a[0]) / 4, rtol=1e-6)


# ------------------------------------------------------------------------------ EP gradient


def test_rbp_equals_bptt(x64):
    params, x, d, cfg = _interior_net()
    free = ep.free_phase(params, x, cfg, n_steps=400)
    g_bptt = ep.bptt_gradient(params, x, d, cfg, n_steps=400)
    g_rbp = ep.rbp_gradient(params, x, d, free, cfg, n_iter=400)
    np.testing.assert_allclose(np.asarray(_flat(g_rbp)), np.asarray(_flat(g_bptt)), atol=1e-10)


def test_ep_approaches_backprop_as_beta_shrinks(x64):
    params, x, d, cfg = _interior_net()
    free = ep.free_phase(params, x, cfg, n_steps=400)
    ref = ep.bptt_gradient(params, x, d, cfg, n_steps=400)
    err_one, err_sym = [], []
    for beta in (0.02, 0.01, 0.005):  # small enough that no unit hits a bound when nudged
        g1, _ = ep.ep_gradient(params, x, d, free, beta, cfg, n_nudge=400)
        gs = ep.symmetric_gradient(params, x, d, free, beta, cfg, n_nudge=400)
        err_one.append(float(jnp.linalg.norm(_flat(g1) - _flat(ref))))
        err_sym.append(float(jnp.linalg.norm(_flat(gs) - _flat(ref))))
        assert err_sym[-1] < err_one[-1], "centered nudging should beat one-sided"
    assert _cos(g1, ref) > 0.999 and _cos(gs, ref) > 0.9999
    # one-sided error is O(beta), centered O(beta^2)
    assert err_one[0] / err_one[2] == pytest.approx(4, rel=0.1)
    assert err_sym[0] / err_sym[2] == pytest.approx(16, rel=0.1)


def test_contrast_vectorised_matches_per_example_loop(x64):
    params, x, d, cfg = _interior_net(batch=4)
    k = jax.random.split(jax.random.PRNGKey(3), 6)
    sa = tuple(jax.random.uniform(k[i], (4, n), jnp.float64) for i, n in enumerate(cfg.sizes[1:]))
    sb = tuple(jax.random.uniform(k[3 + i], (4, n), jnp.float64) for i, n in enumerate(cfg.sizes[1:]))
    scale = jnp.array([2.0, -2.0, 1.0, 0.5])
    g = ep.contrast(params, x, sa, sb, scale, cfg)
    for k_ in range(len(cfg.sizes) - 1):
        want_w = np.zeros(params.weights[k_].shape)
        want_b = np.zeros(params.biases[k_].shape)
        for i in range(4):
            la = [np.asarray(x[i])] + [np.asarray(h[i]) for h in sa]
            lb = [np.asarray(x[i])] + [np.asarray(h[i]) for h in sb]
            want_w -= scale[i] * (np.outer(la[k_], la[k_ + 1]) - np.outer(lb[k_], lb[k_ + 1])) / 4
            want_b -= scale[i] * (la[k_ + 1] - lb[k_ + 1]) / 4
        np.testing.assert_allclose(np.asarray(g.weights[k_]), want_w, atol=1e-13)
        np.testing.assert_allclose(np.asarray(g.biases[k_]), want_b, atol=1e-13)
    # autodiff of the energy difference gives the same contrast (the reference code's T.grad)
    auto = jax.grad(
        lambda p: jnp.mean(scale * (ep.energy(p, x, sa, cfg) - ep.energy(p, x, sb, cfg)))
    )(params)
    np.testing.assert_allclose(np.asarray(_flat(auto)), np.asarray(_flat(g)), atol=1e-13)
    gsum = ep.contrast(params, x, sa, sb, scale, cfg._replace(aggregate="sum"))
    np.testing.assert_allclose(np.asarray(_flat(gsum)), 4 * np.asarray(_flat(g)), atol=1e-12)


def test_explicit_ep_matches_the_autodiff_reference(x64):
    """Explicit forces, clamped drive and contrast == jax.grad of the energy, per example too;
    once inside (0, 1) and once with many units on the bounds (Glorot weights, zero biases)."""
    p_in, x, d, cfg = _interior_net(batch=4)
    cfg = cfg._replace(n_free=30, n_nudge=10)
    p_edge = ep.init_params(jax.random.PRNGKey(4), cfg.sizes, jnp.float64)
    for params in (p_in, p_edge):
        for beta in (0.3, -0.7):
            g_ref, free_ref = reference.autodiff_ep_gradient(params, x, d, beta, cfg)
            free = ep.free_phase(params, x, cfg)
            g, _ = ep.ep_gradient(params, x, d, free, beta, cfg)
            for a, b in zip(free, free_ref, strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
            np.testing.assert_allclose(np.asarray(_flat(g)), np.asarray(_flat(g_ref)), atol=1e-12)
            g_loop = reference.per_example_ep_gradient(params, x, d, beta, cfg)
            np.testing.assert_allclose(np.asarray(_flat(g_loop)), np.asarray(_flat(g)), atol=1e-12)
    assert any(float(jnp.mean(h == 0.0)) > 0.1 for h in ep.free_phase(p_edge, x, cfg))


# ------------------------------------------------------------------------------ training


def test_train_step_sign_is_consistent_and_update_descends(x64):
    params, x, d, cfg = _interior_net(batch=5)
    labels = jnp.arange(5) % cfg.sizes[-1]
    cfg = cfg._replace(n_free=300, n_nudge=300, beta=0.01, alphas=(0.05,) * 3)
    state = ep.EPState(params, ())
    loss = jax.jit(lambda p: ep.loss_after_relaxation(p, x, d, cfg, n_steps=300))
    step = jax.jit(epx.train_step, static_argnames="cfg")
    loss0 = loss(params)
    for seed in range(4):  # either sign of beta must give the same (descending) update
        new, m = step(state, x, labels, jax.random.PRNGKey(seed), cfg)
        assert float(loss(new.params)) < float(loss0)
        assert float(m["loss"]) == pytest.approx(float(loss0), rel=1e-9)


def test_persistent_particles_store_the_free_state():
    cfg = ep.check_config(ep.EPConfig(sizes=(6, 5, 3), alphas=(0.1, 0.1), persistent=True))
    state = epx.init_state(jax.random.PRNGKey(0), cfg, n_examples=10)
    x = jax.random.uniform(jax.random.PRNGKey(1), (3, 6))
    idx = jnp.array([7.0, 2.0, 4.0])
    new, _ = jax.jit(epx.train_step, static_argnames="cfg")(state, jnp.concatenate([x, idx[:, None]], 1), jnp.array([0, 1, 2]),
                           jax.random.PRNGKey(2), cfg)
    free = ep.free_phase(state.params, x, cfg)
    for p, h in zip(new.particles, free, strict=True):
        np.testing.assert_allclose(np.asarray(p[jnp.array([7, 2, 4])]), np.asarray(h), atol=1e-6)
        assert float(jnp.abs(p[jnp.array([0, 1, 3, 5, 6, 8, 9])]).max()) == 0.0


def test_one_hot_covers_every_class_and_example():
    labels = np.tile(np.arange(10), 13)[::-1].copy()
    t = np.asarray(ep.one_hot(labels, 10))
    assert t.shape == (130, 10)
    np.testing.assert_array_equal(t.sum(1), 1)
    np.testing.assert_array_equal(t.argmax(1), labels)
    np.testing.assert_array_equal(t.sum(0), 13)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        ep.one_hot(np.array([0, 10]), 10)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"sizes": (784, 10)}, "at least one hidden layer"),
        ({"alphas": (0.1,)}, "one learning rate per weight matrix"),
        ({"eps": 0.0}, "eps must be positive"),
        ({"n_free": 0}, "n_free must be >= 1"),
        ({"beta": 0.0}, "beta is the nudge magnitude"),
        ({"rho": "sigmoid"}, "rho must be one of"),
        ({"estimator": "foo"}, "estimator must be one of"),
        ({"sign": "per-example"}, "sign must be one of"),
        ({"aggregate": "max"}, "aggregate must be one of"),
    ],
)
def test_bad_config_raises(change, match):
    with pytest.raises(ValueError, match=match):
        ep.check_config(ep.EPConfig()._replace(**change))


def _unchecked(**change) -> ep.EPConfig:
    """An EPConfig that skips the construction-time check (to reach the dispatches)."""
    return tuple.__new__(ep.EPConfig, tuple((ep.EPConfig()._asdict() | change).values()))


@pytest.mark.parametrize("field", sorted(ep.model.OPTIONS))
def test_misspelt_option_raises_at_construction(field):
    with pytest.raises(ValueError, match=f"EPConfig.{field} must be one of"):
        ep.EPConfig(**{field: "clp"})
    with pytest.raises(ValueError, match=f"EPConfig.{field} must be one of"):
        ep.EPConfig()._replace(**{field: "clp"})
    for value in ep.model.OPTIONS[field]:  # every allowed value builds
        assert getattr(ep.EPConfig(**{field: value}), field) == value


def test_every_option_dispatch_ends_in_raise():
    """A config that got past the check must still not fall through to a bug variant."""
    sizes = (4, 3, 2)
    params = ep.init_params(jax.random.PRNGKey(0), sizes)
    x, d = jnp.full((2, 4), 0.5), ep.one_hot(jnp.array([0, 1]), 2)
    s = ep.zero_states(2, sizes)
    calls = {
        "rho": lambda c: ep.rho_fn(c),
        "square": lambda c: ep.energy(params, x, s, c),
        "state_grad": lambda c: ep.relax_step(params, x @ params.weights[0], s, d, 0.0, c),
        "aggregate": lambda c: ep.contrast(params, x, s, s, 1.0, c),
        "sign": lambda c: ep.sample_beta(jax.random.PRNGKey(0), 2, c),
        "estimator": lambda c: epx.train_step(ep.EPState(params, ()), x, jnp.array([0, 1]),
                                              jax.random.PRNGKey(0), c),
    }
    assert set(calls) == set(ep.model.OPTIONS)
    for field, call in calls.items():
        bad = _unchecked(sizes=sizes, alphas=(0.1, 0.1), **{field: "clp"})
        with pytest.raises(ValueError, match=f"EPConfig.{field} must be one of"):
            call(bad)
    with pytest.raises(ValueError, match="EPConfig.square must be one of"):
        ep.forces(params, x @ params.weights[0], s, d, 0.0, _unchecked(sizes=sizes, square="clp"))


def test_model_and_rule_modules_do_not_import_the_cli_or_results():
    """Only gridlib.ep.experiments may pull in gridlib.cli / gridlib.results (house plan)."""
    # gridlib.ep.EPState must stay importable without the CLI too
    code = ("import sys, gridlib.ep, gridlib.ep.reference; "
            "assert gridlib.ep.EPState is gridlib.ep.model.EPState; "
            "print(sorted(m for m in ('gridlib.cli', 'gridlib.results', 'gridlib.ep.experiments') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert all(getattr(ep, n).__doc__ for n in ep.__all__)


def test_bad_shapes_raise():
    params = ep.init_params(jax.random.PRNGKey(0), (6, 5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\)"):
        ep.energy(params, jnp.zeros((2, 7)), ep.zero_states(2, (6, 5, 3)))
    with pytest.raises(ValueError, match="states must have shapes"):
        ep.energy(params, jnp.zeros((2, 6)), ep.zero_states(3, (6, 5, 3)))
    with pytest.raises(ValueError, match="persistent particles need n_examples"):
        epx.make_task(ep.EPConfig(persistent=True))


# ------------------------------------------------------------------------------ seed variants


def test_seed_energy_matches_library_energy_and_is_nan_at_zero_with_clip():
    params = ep.init_params(jax.random.PRNGKey(0), (6, 5, 3))
    x, h, y = jnp.linspace(0, 1, 6), jnp.linspace(0.1, 0.9, 5), jnp.array([0.2, 0.0, 1.0])
    biases = [jnp.zeros(6), *params.biases]
    for name, rho in (("clip", ep.rho_clip), ("hard_sigmoid", jax.nn.hard_sigmoid)):
        want = ep.energy(params, x[None], (h[None], y[None]), ep.EPConfig(rho=name))[0]
        got = ep.seed_energy(x, h, y, biases, params.weights, rho)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    g = jax.grad(ep.seed_energy, argnums=1)(x, jnp.zeros(5), y, biases, params.weights, ep.rho_clip)
    assert bool(jnp.isnan(g).all())


def test_seed_variant_splits():
    from gridlib.data import Splits

    n = 260
    y = np.arange(n, dtype=np.int32) % 10
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    empty = np.zeros((0, 4), np.float32)
    s = Splits(x, y, empty, np.zeros(0, np.int32), x[:5], y[:5])
    lab = ep.seed_variant_splits(s, "labels-100", 20).y_train
    np.testing.assert_array_equal(lab, y[np.minimum(np.arange(n), 99)])  # JAX clamps the index
    one = ep.seed_variant_splits(s, "one-batch", 20)
    assert one.x_train.shape == (260, 4)
    np.testing.assert_array_equal(one.y_train, np.tile(y[:20], 13))
    assert ep.seed_variant_splits(s, None, 20) is s
    with pytest.raises(ValueError, match="unknown data change"):
        ep.seed_variant_splits(s, "shuffle", 20)
    idx = epx.with_index(s)
    assert idx.x_train.shape == (260, 5) and idx.x_val.shape == (0, 5)
    np.testing.assert_array_equal(idx.x_train[:, -1], np.arange(n))


def test_pinned_target_gets_no_backprop_gradient_but_an_ep_update(x64):
    """A target output held at 0 by a negative bias: backprop through the clipped
    relaxation gives its bias exactly zero gradient, EP's contrast pushes it up."""
    params, x, d, cfg = _interior_net(batch=4)
    labels = jnp.arange(4) % 3
    cfg = cfg._replace(n_free=40, n_nudge=20)
    b_out = params.biases[-1].at[0].set(-1.0)  # class 0 cannot rise in the free phase
    params = params._replace(biases=params.biases[:-1] + (b_out,))
    pinned = np.asarray(labels == 0, float).mean()
    assert ep.pinned_target_fraction(params, x, labels, cfg) == pytest.approx(pinned)
    target = ep.one_hot(labels, 3).astype(jnp.float64)
    g_bp = ep.bptt_gradient(params, x, target, cfg)
    assert float(g_bp.biases[-1][0]) == 0.0  # the wall: no signal to raise class 0
    free = ep.free_phase(params, x, cfg)
    g_ep, _ = ep.ep_gradient(params, x, target, free, 1.0, cfg)
    assert float(g_ep.biases[-1][0]) < 0.0  # descent raises the bias of class 0
    # and with the bias back at its interior value nothing is pinned
    assert ep.pinned_target_fraction(params._replace(biases=params.biases[:-1] + (
        jnp.full_like(b_out, 0.3),)), x, labels, cfg) == 0.0


# ------------------------------------------------------------------------------ chapter summaries


def test_symbol_values_and_over_power():
    from gridlib.ep import summary

    m = sp.Matrix(2, 1, lambda i, j: sp.Symbol(f"m_{i}"))
    a, b = sp.symbols("a b")
    vals = summary.symbol_values((m, [[1.0], [2.0]]), ((a,), [3.0]), (b, 4))
    assert vals == {m[0, 0]: 1.0, m[1, 0]: 2.0, a: 3.0, b: 4.0}
    with pytest.raises(ValueError, match="2 symbols given 1 values"):
        summary.symbol_values(((a, b), [1.0]))
    w, x, e, big_d = sp.symbols("w x e D")
    unit, base = (x - 1) / (1 - w**2), 1 - w**2
    expr = 3 * w * (x - 1) / (1 - w**2) ** 3
    out = summary.over_power(expr, unit, e, base, big_d)
    assert sp.simplify(out - 3 * w * e / big_d**2) == 0
    assert sp.simplify(out.subs({e: unit, big_d: base}) - expr) == 0
    with pytest.raises(ValueError, match="not a polynomial"):
        summary.over_power(expr / (x + 2), unit, e, base, big_d)


def test_math_rows_wraps_long_sums():
    from gridlib.ep import summary

    a, b, c, d = sp.symbols("a b c d")
    tex = summary.math_rows([("x", a + b - c + d), ("y", a)], terms_per_line=2).data
    assert tex == (r"\begin{aligned}x &= a + b \\[4pt] &\phantom{=} - c + d \\[4pt] y &= a"
                   r"\end{aligned}")
    assert summary.math_rows([("x", a + b)]).data == r"\begin{aligned}x &= a + b\end{aligned}"
    assert summary.sci_tex(4.4e-16) == r"$4 \times 10^{-16}$"
    w, v = summary.entries("W^{(1)}", 3, 2), summary.entries("b^{(2)}", 2)
    assert w.shape == (3, 2) and sp.latex(w[2, 1]) == "W^{(1)}_{21}" and sp.latex(v[1]) == "b^{(2)}_{1}"
    with pytest.raises(ValueError, match="vector or a matrix"):
        summary.entries("T", 2, 2, 2)


def test_free_energy_trace_matches_free_phase_and_descends(x64):
    from gridlib.ep import summary

    params, x, _, cfg = _interior_net()
    energies, states = summary.free_energy_trace(params, x, cfg, n_steps=30)
    assert energies.shape == (31, x.shape[0])
    assert float(jnp.diff(energies, axis=0).max()) <= 1e-12
    want = ep.free_phase(params, x, cfg, n_steps=30)
    for a, b in zip(states, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-14)


def test_cosine_and_relative_error():
    from gridlib.ep import summary

    g = ep.Params((jnp.array([[1.0, 0.0]]),), (jnp.array([0.0]),))
    h = ep.Params((jnp.array([[2.0, 0.0]]),), (jnp.array([0.0]),))
    k = ep.Params((jnp.array([[0.0, 1.0]]),), (jnp.array([0.0]),))
    assert summary.cosine(g, h) == pytest.approx(1.0) and summary.cosine(g, k) == pytest.approx(0.0)
    assert summary.relative_error(h, g) == pytest.approx(1.0)
    rows = summary.cosine_rows({("a", "R"): 0.5, ("a", "S"): 0.25, ("b", "R"): 1.0, ("b", "S"): 0.0})
    assert rows == [{"estimate": "a", "cosine with R": "0.500", "cosine with S": "0.250"},
                    {"estimate": "b", "cosine with R": "1.000", "cosine with S": "0.000"}]
    beta = summary.beta_rows([0.1], np.array([[0.9, 0.2]]), np.array([[0.99, 0.02]]))
    assert beta[0][r"$\lvert\beta\rvert$"] == "0.1" and beta[0]["rel. error, centered"] == "2.00e-02"


def _write(root, name, config, metrics, seed=0, scale="full", history=None):
    import json

    p = root / "results" / f"{name}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"name": name, "config": config, "metrics": metrics, "history": history,
                             "provenance": {"command": "python -m gridlib ep-mnist", "seed": seed,
                                            "scale": scale, "git_commit": "0" * 40}}))


def _ep_record(tag, seed, err, **change):
    from gridlib import results
    from gridlib.ep import summary

    exp = summary.ep_expect(tag)
    config = {k: v for k, v in exp.items() if not k.startswith("provenance.")}
    config.update(change)
    metrics = {"test_err": err, "test_acc": 1 - err, "train_err_running": err / 10,
               "mean_epoch_time_s": 5.0, "epochs": config["epochs"]}
    history = {"epoch": [1, 2], "test/err": [2 * err, err], "train/err": [err, err / 10]}
    return results.to_jsonable(config), metrics, history


def test_ep_loaders_refuse_another_configuration_and_list_missing_seeds(tmp_results):
    from gridlib import results
    from gridlib.ep import summary

    tag = "mnist_784-500-10_ep"
    for seed, err in ((0, 0.025), (1, 0.027)):
        config, metrics, history = _ep_record(tag, seed, err)
        _write(tmp_results, f"ep/{tag}_seed{seed}", config, metrics, seed=seed, history=history)
    with pytest.raises(summary.MissingResults, match="python -m gridlib ep-mnist --seed 2"):
        summary.load_ep_runs()  # a chapter shows only complete results
    found = summary.load_ep_runs(allow_missing=True)
    assert list(found[tag]) == [f"ep/{tag}_seed0", f"ep/{tag}_seed1"]
    assert found["mnist_784-500-10_symmetric"] == {}
    rows = summary.ep_rows(found)
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and _plain(rows[0]["test error"]) == "2.60 ± 0.14 %"
    curves = summary.ep_curves(found)
    assert curves[summary.EP_RUNS[tag].label]["test/err"].shape == (2, 2)
    missing = summary.missing_commands(found)
    assert "python -m gridlib ep-mnist --seed 2" in missing
    assert sum("--estimator symmetric" in m for m in missing) == 3 and len(missing) == 7
    assert "inside the published 2–3 % range" in summary.in_range_text([0.025, 0.027], 0.02, 0.03)
    assert "below" in summary.in_range_text([0.01], 0.02, 0.03)
    assert summary.headline_text(found).startswith("The 784-500-10 network trained by EP reaches")
    assert "absent" in summary.headline_text({})
    mlps = {"784-500-10": {"a": {"metrics": {"test/acc": 0.98}}}, "784-256-256-10": {}}
    gaps = summary.backprop_gaps(found, mlps)
    assert list(gaps) == ["784-500-10"] and gaps["784-500-10"] == pytest.approx(0.6)
    assert summary.gap_text(gaps) == "784-500-10: EP's test error is 0.60 points above backprop's."
    assert (report.signed(-0.094), report.signed(0.45)) == ("−0.09", "+0.45")
    # a stray short run is refused, not averaged in
    config, metrics, history = _ep_record(tag, 2, 0.1, epochs=1)
    _write(tmp_results, f"ep/{tag}_seed2", config, metrics, seed=2, history=history)
    with pytest.raises(results.ResultsError, match="epochs is 1, but this chapter expects 25"):
        summary.load_ep_runs(allow_missing=True)


def test_mlp_and_seed_failure_loaders(tmp_results):
    from gridlib import results
    from gridlib.ep import summary

    assert summary.load_seed_failures(allow_missing=True) is None
    assert summary.load_bptt_sweep(allow_missing=True) is None
    for load, command in ((summary.load_seed_failures, "ep-seed-failures"),
                          (summary.load_bptt_sweep, "ep-bptt-sweep"),
                          (summary.load_bench, "benchmarks/ep.py")):
        with pytest.raises(summary.MissingResults, match=command):
            load()
    exp = summary.mlp_expect("784-256-256-10")
    config = {k: v for k, v in exp.items() if not k.startswith("provenance.")}
    for seed, acc in ((0, 0.97), (1, 0.98)):
        _write(tmp_results, f"baselines/mnist-mlp-784-256-256-10_seed{seed}", config,
               {"test/acc": acc}, seed=seed)
    with pytest.raises(summary.MissingResults, match="--hidden 500 .*--seed 0 --publish"):
        summary.load_mlp_runs()
    mlps = summary.load_mlp_runs(allow_missing=True)
    assert len(mlps["784-256-256-10"]) == 2 and mlps["784-500-10"] == {}
    rows = summary.comparison_rows({}, mlps)
    assert _plain(rows[0]["test error"]) == "2.50 ± 0.71 %"
    assert "--hidden 256,256" in summary.mlp_command("784-256-256-10")
    _write(tmp_results, "baselines/mnist-mlp-784-500-10_seed0", {**config, "sizes": [784, 500, 10],
                                                                 "activation": "relu"}, {"test/acc": 0.9})
    with pytest.raises(results.ResultsError, match="activation"):
        summary.load_mlp_runs(allow_missing=True)
    base = summary.SEED_FAILURES_EXPECT
    table = {"reference": {"description": "reference semantics", "test_err": 0.04, "train_err_running": 0.08}}
    _write(tmp_results, "ep/seed_failures", {k: v for k, v in base.items() if "." not in k}, table)
    assert summary.load_seed_failures()["metrics"] == table
    assert summary.seed_failure_rows(table)[0]["test error"] == "4.0 %"
    _write(tmp_results, "ep/seed_failures", {**{k: v for k, v in base.items() if "." not in k},
                                             "n_train": 1000}, table)
    with pytest.raises(results.ResultsError, match="n_train"):
        summary.load_seed_failures()


def test_spread_words_follow_the_books_one_rule():
    from gridlib import report
    from gridlib.ep import summary

    a, b = [0.020, 0.022, 0.024], [0.030, 0.032, 0.034]  # 1 point apart, sd 0.2
    assert summary.spread_words(a, b) == (
        "beyond the seeds' spread" if report.groups_differ(a, b) else "within the seeds' spread")
    assert summary.spread_words(a, b) == "beyond the seeds' spread"
    # one sd apart is not enough at n = 3 (the old rule said "beyond")
    assert summary.spread_words(a, [x + 0.0021 for x in a]) == "within the seeds' spread"


def test_paired_differences_match_seeds():
    from gridlib.ep import summary

    def group(values, seeds):
        return {f"r{s}": {"provenance": {"seed": s}, "metrics": {"v": v}}
                for s, v in zip(seeds, values, strict=True)}

    def vals(g):
        return [r["metrics"]["v"] for r in g.values()]

    a, b = group([1.0, 2.0, 3.0], (0, 1, 2)), group([0.5, 1.0], (2, 0))
    assert summary.paired_differences(a, b, vals) == [0.0, 2.5]


def test_tables_of_accuracies_carry_no_seconds_and_the_step_ratio_is_the_benchmarks():
    from gridlib.ep import summary

    bench = {"metrics": {"rows": [{"implementation": "gridlib.ep (explicit forces)", "s per 60k epoch": 3.0}],
                         "like_for_like": {summary.EP_OVER_BACKPROP: 2.16}}}  # fmt: skip
    text = summary.step_ratio_text(bench)
    assert "3.0 s per 60,000 examples of wall time, 2.2× backprop's" in text


def test_product_rows_break_a_long_sum_into_narrow_lines():
    import sympy as sp

    from gridlib.ep import summary

    a, b, c, d, e = sp.symbols("a b c d e")
    tex = summary.product_rows([("x", 2 * e * (a + b + c + d)), ("y", 3 * e)]).data
    assert tex.count(r"\Big(") == tex.count(r"\Big)") == 1
    assert tex.count(r"&\qquad") == 1  # four terms, two per line
    assert "y &= 3 e" in tex and r"\\[8pt]" in tex


def test_wrap_command_keeps_flags_with_their_values():
    from gridlib.ep import summary

    command = summary.relu_command("fashion_mnist", 0)
    text = summary.wrap_command(command, width=60)
    lines = text.split(" \\\n")
    assert " ".join(line.strip() for line in lines) == command
    assert all(len(line) <= 64 for line in lines)
    assert not any(line.rstrip().endswith(("--seed", "--name")) for line in lines)


def test_the_runs_of_the_backprop_sweep_are_named_in_words():
    from gridlib.ep import summary

    assert summary.sweep_label("ep x1") == "EP"
    assert summary.sweep_label("bptt x0.3") == "backprop, EP rates × 0.3"
    with pytest.raises(KeyError):
        summary.sweep_label("hebb x1")
