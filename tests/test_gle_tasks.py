"""GLE tasks: adjoint and BPTT baselines, LagLine learning, MNIST-1D networks and ensembles."""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gridlib import gle
from gridlib.gle import bptt, teachers
from gridlib.gle import mnist1d as m1d


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_adjoint_equals_gle_error_when_instantaneous(x64):
    """tau_r = tau_m: the exact adjoint of every layer's input current is the GLE error."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    net = tuple(gle.make_layer(k, a, b, 1.0, 1.0, dtype=jnp.float64)
                for k, a, b in zip(keys, [2, 4, 3], [4, 3, 2], strict=True))
    cfg = gle.Config(("tanh", "tanh", "linear"), dt=0.1, beta=1.0, loss="mse")
    x = jnp.array([[0.5, -1.0]])
    tgt = jnp.array([[0.3, -0.2]])
    T = 16
    xs, ts = jnp.broadcast_to(x, (T, 1, 2)), jnp.broadcast_to(tgt, (T, 1, 2))
    st0 = gle.init_state(net, 1)
    _, (so, _) = gle.simulate(net, st0, xs, ts, cfg, record=True)
    lam = bptt.adjoint(net, st0, xs, ts, cfg)
    n = 8  # steady state (>= 2 x depth), and before the end of the window matters, and far enough from the end of the window for the adjoint
    for l in range(3):
        np.testing.assert_allclose(lam[l][n], so.errors[l][n], atol=1e-12)


def test_bptt_gradient_matches_finite_differences(x64):
    net = teachers.lagline_net([0.7, 1.3], [0.5, 0.8], 0.1, jnp.float64)
    cfg = teachers.lagline_config(teachers.LagLineSetup(), "bptt_tw1")
    xs = jnp.sin(jnp.arange(50) * 0.1)[:, None, None]
    ts = 0.5 * xs + 0.3
    g, loss, _, _ = bptt.bptt_grads(net, gle.init_state(net, 1), xs, ts, cfg)
    eps = 1e-6
    for i in range(2):
        for field in ("W", "tau_m"):
            def shifted(d, i=i, field=field):
                lay = net[i]._replace(**{field: getattr(net[i], field) + d})
                n2 = tuple(lay if j == i else net[j] for j in range(2))
                return bptt.window_loss(n2, gle.init_state(net, 1), xs, ts, cfg)[0]
            fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
            np.testing.assert_allclose(np.ravel(getattr(g[i], field))[0], fd, rtol=1e-5)
    with pytest.raises(ValueError, match="divisor"):
        opt = optax.adam(1e-3)
        bptt.truncated_bptt(gle.Learner(net, opt.init(net), gle.init_state(net, 1)), xs, ts, cfg,
                            opt, 7)


def test_lagline_learns_weights_and_time_constants():
    setup = teachers.LagLineSetup(t_train=200.0, lr=2e-3, batch=8, t_init=2.0)
    out = teachers.run_lagline("gle", jax.random.PRNGKey(1), setup, trace_steps=10)
    target = np.array([1.0, 2.0])
    err0 = np.abs(np.r_[out["w0"], out["tau_m0"]] - np.r_[target, target]).max()
    err1 = np.abs(np.r_[out["w"][-1], out["tau_m"][-1]] - np.r_[target, target]).max()
    assert err1 < 0.1 < err0, (out["w"][-1], out["tau_m"][-1])
    assert out["loss"][-1] < 1e-2 * out["loss"][0]
    with pytest.raises(ValueError, match="unknown LagLine model"):
        teachers.run_lagline("rtrl", jax.random.PRNGKey(1), setup)


def test_plateau_schedule_follows_reduce_on_plateau():
    setup = m1d.Setup(plateau_patience=2, plateau_factor=0.5)
    p = m1d.plateau_init(1.0)
    lrs = []
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.95, 0.95, 0.95, 0.5, 0.6]:
        p = m1d.plateau_update(p, jnp.asarray(loss), setup)
        lrs.append(float(p.lr))
    # improvements at epochs 0, 1, 8; three bad epochs (> patience 2) halve the rate at 4 and 7
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_mnist1d_networks_have_the_published_sizes():
    def shapes(arch):  # parameter shapes only: nothing is computed or compiled
        return jax.eval_shape(lambda k: m1d.make_net(k, m1d.setup_for(arch))[0],
                              jax.random.PRNGKey(0))

    assert m1d.n_params(shapes("e2e15k")) == 14_956 and m1d.n_params(shapes("e2e42k")) == 42_040
    cfg = m1d.net_config(m1d.setup_for("e2e15k"))
    assert cfg.activations[0] == "linear" and cfg.activations[-1] == "linear"
    tm, tr = m1d.hidden_taus(m1d.setup_for("e2e15k"))
    assert (np.sum(np.asarray(tm) == 0.6), np.sum(np.asarray(tr) == 1.2)) == (18, 17)
    static, scfg = shapes("static"), m1d.net_config(m1d.setup_for("static"))
    assert m1d.n_params(static[4:]) == 10 * 60 + 60 + 60 * 60 + 60 + 60 * 10 + 10
    assert scfg.plastic == (False,) * 4 + (True,) * 3
    with pytest.raises(ValueError, match="unknown MNIST-1D GLE architecture"):
        m1d.setup_for("e2e100k")
    from gridlib.gle import experiments

    assert experiments._seeds("12, 34") == (12, 34)
    with pytest.raises(ValueError, match="comma-separated"):
        experiments._seeds("12;34")


def test_ensemble_task_equals_separate_seeds():
    """The library's ensemble (``lax.map`` over seeds, compiled with the task's options as ``fit``
    compiles it) gives every seed the trajectory it has when trained alone: parameters, Adam
    moments, dynamic state and metrics over two minibatches, to float32 rounding."""
    setup = m1d.setup_for("e2e15k", n_fast=3, n_slow=4, n_hidden=2, seq_len=12, batch=4,
                          schedule=False)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, 4, 12)).astype(np.float32)
    ys = rng.integers(0, 10, (2, 4))
    seeds = (3, 4, 9)
    task = m1d.make_task(setup, seeds, n_train=8)
    train = jax.jit(task.train_step, compiler_options=task.compiler_options)
    st = task.init(None)
    _, cfg = m1d.make_net(jax.random.PRNGKey(0), setup)
    one = jax.jit(partial(m1d.train_batch, cfg=cfg, setup=setup),
                  compiler_options=task.compiler_options)  # fmt: skip
    alone = [m1d.seed_init(jax.random.PRNGKey(seed), setup) for seed in seeds]
    for x, y in zip(xs, ys, strict=True):
        st, metrics = train(st, x, y, None)
        assert metrics["loss"].shape == (len(seeds),)
        for i in range(len(seeds)):
            alone[i], m = one(alone[i], x, y)
            got = jax.tree.map(lambda a, i=i: a[i], (st.seeds, {k: metrics[k] for k in m}))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves((alone[i], m)), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    sums = jax.jit(task.eval_step)(st, xs[0], ys[0])
    assert sums["acc"].shape == (len(seeds),) and np.all(sums["loss"] > 0)
    with pytest.raises(ValueError, match="length"):
        task.train_step(st, xs[0][:, :5], ys[0], None)
    with pytest.raises(ValueError, match="schedule needs"):
        m1d.make_task(setup._replace(schedule=True), (0,), n_train=8)


def test_compiler_options_change_no_number():
    """``packed.COMPILER_OPTIONS`` (copy analysis, vector width, the memory-optimised schedule)
    change how XLA runs the step, not what it computes: the ensemble's state and metrics are
    bit for bit those of the same step compiled with XLA's defaults."""
    from gridlib.gle import packed

    setup = m1d.setup_for("e2e15k", n_fast=3, n_slow=4, n_hidden=2, seq_len=12, batch=4,
                          schedule=False)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 12)).astype(np.float32), rng.integers(0, 10, 4)
    task = m1d.make_task(setup, (3, 4), n_train=8)
    assert task.compiler_options == packed.COMPILER_OPTIONS
    runs = []
    for options in (task.compiler_options, None):
        train = jax.jit(task.train_step, compiler_options=options)
        st, metrics = train(task.init(None), x, y, None)
        runs.append(train(st, x, y, None))
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def _stepwise_adam(net, opt, dyn, xs, target, cfg, lr):
    """The per-layer reference of :func:`gridlib.gle.packed.online_adam`."""

    def body(carry, x_t):
        net, opt, dyn, out_sum, loss_sum = carry
        dyn, g, so = gle.step(net, dyn, x_t, target, cfg)
        upd, opt = m1d.ADAM.update(g, opt)
        net = jax.tree.map(lambda p, u: p - lr * u, net, upd)
        return (net, opt, dyn, out_sum + so.out, loss_sum + gle.loss_value(so.out, target, cfg)), None

    zeros = jnp.zeros(target.shape, xs.dtype)
    return jax.lax.scan(body, (tuple(net), opt, tuple(dyn), zeros, zeros[:, 0]), xs)[0]


PACKED_CASES = {
    # name: (layer sizes, activations, config overrides)
    "e2e-like": ((1, 5, 5, 5, 5, 3), ("linear", "tanh", "tanh", "tanh", "linear"), {"loss": "ce"}),
    "carried slopes, soma feedback": ((2, 4, 4, 3), ("softplus", "softplus", "sigmoid"), {"gamma": 0.3}),
    "instantaneous errors, frozen layers": ((1, 4, 4, 4, 6, 3), ("linear",) * 3 + ("tanh", "linear"),
                                            {"prospective_errors": False, "loss": "ce",
                                             "plastic": (False,) * 3 + (True,) * 2}),
    "one layer": ((3, 2), ("sigmoid",), {}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PACKED_CASES))
def test_packed_online_adam_equals_stepwise(x64, case):
    """The packed layout (feature-major, layers stacked, bias folded in, slopes from rates) gives
    the per-layer scan's parameters, Adam moments, dynamic state and outputs to float rounding,
    from a zero state (whose slopes are not a function of its rates) and from a running one."""
    from gridlib.gle import packed

    sizes, acts, over = PACKED_CASES[case]
    keys = jax.random.split(jax.random.PRNGKey(len(case)), len(sizes))
    taus = jnp.linspace(0.3, 1.1, max(sizes))
    net = tuple(gle.make_layer(k, n_in, n_out, taus[:n_out], taus[:n_out][::-1] * 0.5 + 0.2, dtype=jnp.float64)
                for k, n_in, n_out in zip(keys[1:], sizes[:-1], sizes[1:], strict=True))  # fmt: skip
    cfg = gle.Config(activations=acts, dt=0.2, **over)
    gle.validate(net, cfg)
    batch, steps = 3, 7
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.normal(size=(steps, batch, sizes[0])))
    target = jax.nn.softmax(jnp.asarray(rng.normal(size=(batch, sizes[-1]))), axis=-1)
    lr = jnp.asarray(0.05)
    run_packed = jax.jit(lambda *a: packed.online_adam(*a, xs, target, cfg, lr, m1d.ADAM))
    run_ref = jax.jit(lambda *a: _stepwise_adam(*a, xs, target, cfg, lr))
    state = (net, m1d.ADAM.init(net), gle.init_state(net, batch))
    for _ in range(2):  # the second call starts from a running state
        got, want = run_packed(*state[:3]), run_ref(*state[:3])
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
        state = want[:3]


def test_mnist1d_train_batch_packed_and_stepwise_agree(x64):
    """``train_batch`` (packed) equals ``train_batch_stepwise`` over two minibatches, metrics and
    the whole seed state included; a config the packed form does not cover is refused by it."""
    from gridlib.gle import packed

    setup = m1d.setup_for("e2e15k", n_fast=3, n_slow=4, n_hidden=2, seq_len=9, batch=4, schedule=False)
    cfg = m1d.net_config(setup)
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(4, 9))), jnp.asarray(rng.integers(0, 10, 4))
    s_new = s_old = m1d.seed_init(jax.random.PRNGKey(5), setup, jnp.float64)
    new = jax.jit(partial(m1d.train_batch, x=x, y=y, cfg=cfg, setup=setup))
    old = jax.jit(partial(m1d.train_batch_stepwise, x=x, y=y, cfg=cfg, setup=setup))
    for _ in range(2):
        (s_new, m_new), (s_old, m_old) = new(s_new), old(s_old)
    for a, b in zip(jax.tree.leaves((s_new, m_new)), jax.tree.leaves((s_old, m_old)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    tau_cfg = cfg._replace(learn_tau=True)
    assert packed.supports(cfg) and not packed.supports(tau_cfg)
    with pytest.raises(ValueError, match="learn_tau"):
        packed.online_adam(s_new.net, s_new.opt, s_new.dyn, x.T[..., None], jax.nn.one_hot(y, 10),
                           tau_cfg, 0.1, m1d.ADAM)  # fmt: skip


def test_ensemble_seed_loops_agree():
    """``lax.map`` over seeds (one device) and ``vmap`` (a split seed axis) give the same numbers."""
    setup = m1d.setup_for("e2e15k", n_fast=3, n_slow=4, n_hidden=1, seq_len=12, batch=4,
                          schedule=False)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 12)).astype(np.float32), rng.integers(0, 10, 4)
    runs = {}
    for loop in ("map", "vmap"):
        task = m1d.make_task(setup, (3, 4), n_train=8, seed_loop=loop)
        runs[loop] = jax.jit(task.train_step, compiler_options=task.compiler_options)(
            task.init(None), x, y, None)
    for a, b in zip(jax.tree.leaves(runs["map"]), jax.tree.leaves(runs["vmap"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="seed_loop"):
        m1d.make_task(setup, (3,), n_train=8, seed_loop="pmap")


# --------------------------------------------------------------------------------------------
# gridlib.gle.summary: what the chapters load and show
# --------------------------------------------------------------------------------------------


def test_measured_transfer_equals_the_discrete_filter(x64):
    from gridlib.gle import summary

    h_f, h_e = summary.measure_transfer(2.0, 0.01, 1.0, 0.2)
    np.testing.assert_allclose(h_f, gle.euler_transfer(2.0, 0.01, 1.0, 0.2), atol=5e-3)
    np.testing.assert_allclose(h_e, gle.euler_transfer(2.0, 0.01, 0.2, 1.0), atol=5e-3)
    (row,) = summary.transfer_rows([2.0], 0.01, 1.0, 0.2)
    assert row["forward − H(z)"] < 5e-3 < row["error − continuous"] < 0.05


def _plant(path, record):
    """A published record written as a file, the way a finished run leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def _mnist1d_record(arch, seeds, epochs=150, n_train=4000, n_done=3, acc=0.9, **setup):
    from gridlib import results

    hist = {"epoch": list(range(1, n_done + 1)), "epoch_time_s": [2.0] * n_done,
            "test/acc": [[acc] * len(seeds)] * n_done, "test/loss": [[0.3] * len(seeds)] * n_done,
            "train/lr": [[1e-3] * len(seeds)] * n_done}
    config = {"setup": m1d.setup_for(arch, **setup)._asdict(), "seeds": list(seeds),
              "epochs": epochs, "n_train": n_train, "n_test": 1000}
    name = f"gle/mnist1d/{arch}_seeds{'-'.join(map(str, seeds))}"
    rec = {"name": name, "provenance": {"seed": seeds[0], "scale": "full"}, "config": config,
           "metrics": {}, "history": hist}
    _plant(results.path(name), rec)


def test_mnist1d_loader_merges_seeds_and_refuses_strays(tmp_results):
    from gridlib import results
    from gridlib.gle import summary

    assert summary.load_mnist1d("e2e15k") is None
    _mnist1d_record("e2e15k", (1, 2), acc=0.9)
    _mnist1d_record("e2e15k", (3, 4, 5), acc=0.8)
    res = summary.load_mnist1d("e2e15k")
    assert res["acc"].shape == (3, 5) and res["seeds"] == [1, 2, 3, 4, 5]
    (row,) = summary.mnist1d_rows({"e2e15k": res, "static": None})
    assert row["seeds"] == 5 and row["epochs"] == "3 / 150" and row["gap (points)"] == "unfinished"
    assert "epoch_s" not in res  # a record's wall time is no speed
    assert summary.reproduction_text({"e2e15k": res}).endswith("took 0 min for the end-to-end GLE, 15k.")
    assert summary.reproduction_text({"e2e15k": None}) == ""
    # a short trial among the published seeds is refused, not averaged in
    _mnist1d_record("e2e15k", (6,), epochs=2, n_train=400)
    with pytest.raises(results.ResultsError, match="epochs"):
        summary.load_mnist1d("e2e15k")
    # static: the unused fast/slow fields do not matter, its own fields do
    _mnist1d_record("static", (0,), n_fast=99)
    assert summary.load_mnist1d("static")["seeds"] == [0]
    _mnist1d_record("static", (1,), lr=0.01)
    with pytest.raises(results.ResultsError, match="setup.lr"):
        summary.load_mnist1d("static")


def test_lagline_loader_checks_the_published_configuration(tmp_results):
    from gridlib import results
    from gridlib.gle import summary

    assert summary.load_lagline(["gle"]) == ({}, ["gle"])
    assert summary.load_lagnet() is None
    base = {"name": "gle/lagline/gle", "provenance": {"seed": 1}, "metrics": {}}
    _plant(results.path("gle/lagline/gle"), {**base, "config": summary.lagline_expect("gle")})
    runs, missing = summary.load_lagline(["gle", "bp"])
    assert list(runs) == ["gle"] and missing == ["bp"]
    _plant(results.path("gle/lagline/gle"),
           {**base, "config": {**summary.lagline_expect("gle"), "t_train": 400.0}})
    with pytest.raises(results.ResultsError, match="t_train"):
        summary.load_lagline(["gle"])


def test_speed_summary_arithmetic():
    from gridlib.gle import summary

    bench = {"config": {"flops_per_seed_step": 1e6},
             "metrics": {"rows": [{"seed-steps per CPU-s": 1000.0}, {"seed-steps per CPU-s": 2000.0}],
                         "ceilings": {"network product, GFLOP per CPU-s": 4.0}}}
    sp_ = summary.speed_summary(bench, epochs=1, n_batches=1, seq_len=60, n_seeds=2, cores=2)
    assert sp_["seed_steps"] == 120 and sp_["best_rate"] == 2000.0
    assert sp_["minutes"] == pytest.approx(120 / 2000 / 2 / 60)
    assert sp_["network_ceiling_minutes"] == pytest.approx(120 * 1e6 / (2 * 4e9) / 60)
    assert sp_["fraction_of_network_ceiling"] == pytest.approx(2000 * 1e6 / 1e9 / 4.0)
    assert "aligned" in summary.math_rows([("x", "1")])._repr_latex_()
    (row,) = summary.ceiling_rows(sp_, target_minutes=15)
    assert row["ceiling"] == "network product" and row["within 15 min"] == "yes"
    assert "120 seed-steps" in summary.speed_text(sp_)
    assert summary.sci_tex(6.2e8) == "6 \\times 10^{8}"


def test_published_comparison_uses_the_books_spread_rule():
    # the paper's 15k network: 91.7 +- 0.8 % over 10 seeds; ten seeds of ours around 91.5 %
    # are within (Welch's 95 % interval, 9 degrees of freedom), ten around 89 % are not
    from gridlib import report
    from gridlib.gle import summary

    near = 0.915 + 0.01 * np.linspace(-1, 1, 10)
    far = near - 0.026
    assert not summary.differs_from_published(near, "e2e15k")
    assert summary.differs_from_published(far, "e2e15k")
    assert summary.differs_from_published(far, "e2e15k") == report.groups_differ(
        far, 0.917 + 0.008 * np.linspace(-1, 1, 10) / np.std(np.linspace(-1, 1, 10), ddof=1))
