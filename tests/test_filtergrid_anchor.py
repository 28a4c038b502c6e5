"""The wrapper around the original grid code (gridlib.filtergrid.anchor).

Without the original's folder (../shared/anchors/grid-neurons, or GRIDLIB_ANCHOR) every test
that needs it is skipped with a message saying so.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from gridlib import cli
from gridlib.filtergrid import anchor
from gridlib.filtergrid.cell import DT
from gridlib.filtergrid.snap1 import snap1_batch_grads

needs_anchor = pytest.mark.skipif(not anchor.available(), reason=anchor.unavailable_message())


def test_absent_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(anchor.ENV_VAR, str(tmp_path / "nowhere"))
    assert not anchor.available()
    with pytest.raises(anchor.AnchorUnavailableError, match="not at .*nowhere"):
        anchor.load_anchor()
    # the command says so in one line (exit code 2), before any work
    assert cli.main(["filtergrid-protocols"]) == 2


def _tiny_data(n_train=64, n_val=400, gain=10.0):
    """Sparse MNIST-like sequences in the original's layout: (n, 28, 28) in [0, gain]."""
    k = jax.random.split(jax.random.PRNGKey(7), 4)
    x = gain * jax.random.uniform(k[0], (n_train + n_val, 28, 28)) * (
        jax.random.uniform(k[1], (n_train + n_val, 28, 28)) < 0.2)
    y = jax.random.randint(k[2], (n_train + n_val,), 0, 10)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@pytest.fixture(scope="module")
def original():
    g = anchor.load_anchor()
    return g, anchor.original_functions(g)


@needs_anchor
def test_first_step_equals_the_originals_own_step(original):
    g, fns = original
    train_x, train_y, _, _ = _tiny_data()
    params = g.init_block_params(jax.random.PRNGKey(0), topology=fns.topo, tau_min=1e-3, tau_max=20e-3)
    opt = optax.adam(3e-3)
    opt_state = opt.init(params)
    xs, ys = train_x[:2], train_y[:2]
    # the original's own rule, example by example (no vmap)
    rule = jax.jit(lambda p, x, y: g.local_grads(p, g.zero_block_state(fns.topo), x, y, fns.topo, DT, "sum"))
    per = [rule(params, xs[b], ys[b]) for b in range(2)]
    loss = np.mean([float(p[0]) for p in per])
    grad = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, per[0][1], per[1][1])
    updates, _ = opt.update(grad, opt_state, params)
    expected = optax.apply_updates(params, updates)

    new_params, _, step_loss, acc = fns.train_step(params, opt_state, xs, ys)
    assert float(step_loss) == pytest.approx(loss, rel=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    readouts = [np.argmax(p[2]) for p in per]
    assert float(acc) == np.mean([r == int(t) for r, t in zip(readouts, ys, strict=True)])

    # ... and the library's SnAP-1 gives the same gradient (float32 rounding apart)
    _, _, ours = snap1_batch_grads(anchor.to_grid_params(params), xs, ys)
    theirs = anchor.to_grid_params(g.BlockParams(cells=grad.cells, input_routing=None))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


@needs_anchor
def test_parameter_layouts_round_trip(original):
    g, fns = original
    params = g.init_block_params(jax.random.PRNGKey(3), topology=fns.topo, tau_min=1e-3, tau_max=20e-3)
    gp = anchor.to_grid_params(params)
    assert gp.w_left.shape == (28, 10)
    assert float(gp.w_left[2, 5]) == float(params.cells.w_left[2 * 10 + 5])  # raster k = i M + j
    back = anchor.to_block_params(g, gp)
    for a, b in zip(back.cells, params.cells, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_anchor
def test_checkpoint_resumes_to_the_same_numbers(tmp_path):
    data = _tiny_data()
    kw = dict(epochs=2, train_size=64, data=data, val_subset=200, log=lambda s: None)
    whole = anchor.train_original(**kw)
    first = anchor.train_original(**kw, run_dir=tmp_path, stop_after=1, start_record={"start": 1})
    assert first["epochs_done"] == 1 and len(first["history"]["loss"]) == 1
    resumed = anchor.train_original(**kw, run_dir=tmp_path, start_record={"start": 2})
    assert resumed["epochs_done"] == 2
    assert resumed["earlier_starts"] == [{"start": 1, "from_epoch": 0}]  # provenance of every start
    for key in ("loss", "train_acc", "val"):
        assert resumed["history"][key] == whole["history"][key]
    for a, b in zip(jax.tree_util.tree_leaves(resumed["params"]), jax.tree_util.tree_leaves(whole["params"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    # a different configuration refuses the checkpoint instead of resuming it
    with pytest.raises(anchor.checkpoint.CheckpointError, match="different configuration"):
        anchor.train_original(**{**kw, "seed": 1}, run_dir=tmp_path)


@needs_anchor
def test_subset_is_the_scripts_draw():
    idx = np.asarray(anchor.subset_indices(9))
    expected = np.asarray(jax.random.permutation(jax.random.PRNGKey(9 + 999), 10000)[:2000])
    np.testing.assert_array_equal(idx, expected)
    assert len(set(idx.tolist())) == 2000


def test_the_originals_mnist_is_256x_our_pixels_and_never_a_file():
    from types import SimpleNamespace

    from gridlib import data

    try:
        s = data.load_mnist(n_train=5, n_test=5)
    except data.DataUnavailableError as err:  # pragma: no cover - offline machine without MNIST
        pytest.skip(str(err))
    X, y = anchor.original_mnist()
    assert X.shape == (70000, 784) and X.dtype == np.float32
    np.testing.assert_array_equal(X[:5], s.x_train * 256)
    np.testing.assert_array_equal(X[60000:60005], s.x_test * 256)
    np.testing.assert_array_equal(y[:5], s.y_train)
    # handed to the original's loader in memory: it never reads or writes ~/.cache
    loader = SimpleNamespace(_MNIST_CACHE=None, __file__="mnist.py")
    anchor.provide_mnist(SimpleNamespace(mnist_module=loader))
    assert loader._MNIST_CACHE[0] is not None and loader._MNIST_CACHE[0].shape == (70000, 784)



@needs_anchor
def test_perturbed_rule_equals_the_originals(original):
    """The deterministic robustness knobs (leak, sign-asymmetric gain, subtraction mismatch) give
    the original's own perturbed gradient on its 28 x 10 grid; the perturbation moves the
    gradient far more than the tolerance, so a knob with the wrong meaning fails here."""
    from gridlib.filtergrid.perturb import perturbation, perturbed_snap1_batch_grads

    g, fns = original
    train_x, train_y, _, _ = _tiny_data()
    params = g.init_block_params(jax.random.PRNGKey(0), topology=fns.topo, tau_min=1e-3, tau_max=20e-3)
    xs, ys = train_x[:2], train_y[:2]
    p = perturbation(leak=0.1, gain_pos=0.85, gain_neg=1.1, subtraction=0.07)
    rule = jax.jit(lambda x, y: g.local_grads(params, g.zero_block_state(fns.topo), x, y, fns.topo,
                                              DT, "sum", perturbation=g.Perturbation(*(0.0 if v is None else v for v in p)),
                                              key=jax.random.PRNGKey(0))[1])
    per = [rule(xs[b], ys[b]) for b in range(2)]
    theirs = anchor.to_grid_params(g.BlockParams(
        cells=jax.tree_util.tree_map(lambda a, b: (a + b) / 2, per[0].cells, per[1].cells),
        input_routing=None))
    ours = perturbed_snap1_batch_grads(anchor.to_grid_params(params), xs, ys, p, jax.random.PRNGKey(0))[2]
    exact = snap1_batch_grads(anchor.to_grid_params(params), xs, ys)[2]
    for a, b, e in zip(ours, theirs, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
        assert np.max(np.abs(a - e)) > 50 * (2e-5 + 2e-3 * np.max(np.abs(e)))
