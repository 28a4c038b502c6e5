"""gridnet: blocked update vs independent references, hand VJP vs autodiff and finite differences."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gridlib import gridnet as gn
from gridlib.gridnet import hand_vjp


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _cells(key, g, dtype=jnp.float64):
    """Random cell parameters with nonzero bias and varied residual scales (the seed's zero-bias
    identity test would not see a wrong bias path)."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(key), 3)
    return gn.CellParams(
        w=jax.random.normal(k1, (27, g, g, g), dtype) / np.sqrt(27),
        b=0.3 * jax.random.normal(k2, (g, g, g), dtype),
        r=1.0 + 0.5 * jax.random.normal(k3, (g, g, g), dtype),
    )


def _phi(name, z):
    return {"silu": z / (1 + np.exp(-z)), "relu": np.maximum(z, 0),
            "leaky_relu": np.where(z > 0, z, 0.01 * z), "tanh": np.tanh(z)}[name]  # fmt: skip


def loop_reference(h, p, block, inner, act):
    """Per-cell loops in numpy, written from the definition: each block copies its window at the
    start of the outer step; its interior takes ``inner`` Jacobi updates; the halo never changes."""
    h = np.asarray(h, np.float64)
    w, b, r = (np.asarray(a, np.float64) for a in p)
    bsz, g = h.shape[0], h.shape[-1]
    out = h.copy()
    start = np.pad(h, [(0, 0)] + [(1, 1)] * 3)  # zero outside the grid
    for n in range(bsz):
        for corner in itertools.product(range(0, g, block), repeat=3):
            lo = np.array(corner)
            win = start[n, lo[0] : lo[0] + block + 2, lo[1] : lo[1] + block + 2,
                        lo[2] : lo[2] + block + 2].copy()  # fmt: skip
            for _ in range(inner):
                new = win.copy()
                for u in itertools.product(range(block), repeat=3):
                    cell = tuple(lo + np.array(u))
                    z = b[cell]
                    for i, (da, db, dc) in enumerate(itertools.product(range(3), repeat=3)):
                        z += w[(i, *cell)] * win[u[0] + da, u[1] + db, u[2] + dc]
                    new[u[0] + 1, u[1] + 1, u[2] + 1] = win[u[0] + 1, u[1] + 1, u[2] + 1] + r[
                        cell
                    ] * _phi(act, z)
                win = new
            out[n, lo[0] : lo[0] + block, lo[1] : lo[1] + block, lo[2] : lo[2] + block] = win[
                1:-1, 1:-1, 1:-1
            ]
    return out


@pytest.mark.parametrize("block,inner,act", [(2, 3, "silu"), (1, 2, "leaky_relu")])
def test_blocked_update_equals_per_cell_loops(x64, block, inner, act):
    g = 4
    p = _cells(0, g)
    h = jax.random.normal(jax.random.PRNGKey(1), (2, g, g, g), jnp.float64)
    ref = loop_reference(h, p, block, inner, act)
    for f in (gn.step, gn.blocked_step, gn.naive_step):
        out = jax.jit(f, static_argnums=(2, 3, 4))(h, p, block, inner, act)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12, err_msg=f.__name__)


def test_stale_halo_changes_the_result(x64):
    """With several inner steps and several blocks the blocked update is NOT the synchronous one
    (otherwise the tests above could not tell the two apart)."""
    p = _cells(2, 4)
    h = jax.random.normal(jax.random.PRNGKey(3), (2, 4, 4, 4), jnp.float64)
    diff = jax.jit(lambda h, p: gn.step(h, p, 2, 3) - gn.sync_step(h, p, 3))(h, p)
    assert float(jnp.max(jnp.abs(diff))) > 1e-2


def test_one_block_equals_synchronous_grid(x64):
    g, inner = 6, 3
    p = _cells(4, g)
    h = jax.random.normal(jax.random.PRNGKey(5), (2, g, g, g), jnp.float64)

    @jax.jit
    def all_forms(h, p):
        return (gn.sync_step(h, p, inner), gn.step(h, p, g, inner), gn.blocked_step(h, p, g, inner),
                gn.step(h, p, 2, 1), gn.sync_step(h, p, 1))  # fmt: skip

    sync, one_block, windows, blocked_once, sync_once = all_forms(h, p)
    np.testing.assert_allclose(one_block, sync, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(windows, sync, rtol=1e-12, atol=1e-12)
    # with one inner step, the blocking changes nothing either
    np.testing.assert_allclose(blocked_once, sync_once, rtol=1e-12, atol=1e-12)


def test_block_layout_round_trip_and_windows():
    x = jnp.arange(2 * 6**3, dtype=jnp.float32).reshape(2, 6, 6, 6)
    y = gn.to_blocks(x, 3)
    assert y.shape == (2, 2, 2, 2, 3, 3, 3)
    np.testing.assert_array_equal(gn.from_blocks(y), x)
    win = gn.windows(y)  # block (1, 0, 1): rows 2..5, cols -1..3, depth 2..5 of the padded grid
    xp = np.pad(np.asarray(x), [(0, 0)] + [(1, 1)] * 3)
    np.testing.assert_array_equal(win[:, 1, 0, 1], xp[:, 3:8, 0:5, 3:8])


def test_same_block_masks_count():
    m = gn.same_block_masks(8, 4)
    # interior cells of a 4^3 block (2^3 of 4^3) read all 27 neighbours from their own block
    assert m[:, 1:3, 1:3, 1:3].all()
    # the corner cell (3, 3, 3) of block 0 reads 19 of 27 neighbours from other blocks
    assert int((~m[:, 3, 3, 3]).sum()) == 19


def test_transpose_weights_is_the_adjoint(x64):
    """<stencil(x), g> == <x, stencil^T(g)> with the transposed weight field."""
    g, bsz = 5, 2
    w = jax.random.normal(jax.random.PRNGKey(8), (27, g, g, g), jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(9), (g, g, g, bsz), jnp.float64)
    gz = jax.random.normal(jax.random.PRNGKey(10), (g, g, g, bsz), jnp.float64)
    lhs = jnp.sum(hand_vjp._stencil_cm(hand_vjp._pad3(x), w, g) * gz)
    rhs = jnp.sum(x * hand_vjp._stencil_cm(hand_vjp._pad3(gz), gn.transpose_weights(w), g))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_activation_derivatives(x64):
    z = jnp.linspace(-4, 4, 41, dtype=jnp.float64) + 0.013  # avoid the kink at 0
    for name in gn.ACTIVATIONS:
        auto = jax.vmap(jax.grad(gn.activation(name)))(z)
        np.testing.assert_allclose(gn.activation_grad(name)(z), auto, rtol=1e-12, err_msg=name)


def test_custom_vjp_matches_autodiff_and_finite_differences(x64):
    g, block, inner = 4, 2, 3  # several blocks, several inner steps: the stale halo is exercised
    p = _cells(11, g)
    h = jax.random.normal(jax.random.PRNGKey(12), (2, g, g, g), jnp.float64)
    target = jax.random.normal(jax.random.PRNGKey(13), h.shape, jnp.float64)

    def loss(h, p, custom):
        return jnp.sum(target * jnp.sin(gn.step(h, p, block, inner, "silu", custom_vjp=custom)))

    value_and_grad = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=2)
    _, (gh, gp) = value_and_grad(h, p, True)
    _, auto = value_and_grad(h, p, False)
    for a, b in zip(jax.tree.leaves((gh, gp)), jax.tree.leaves(auto), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    f = jax.jit(lambda h, p: loss(h, p, True))
    eps = 1e-6
    for seed in range(3):  # central differences along random directions in (h, W, b, r)
        kh, kp = jax.random.split(jax.random.PRNGKey(100 + seed))
        vh = jax.random.normal(kh, h.shape, jnp.float64)
        vp = jax.tree.map(lambda a, k: jax.random.normal(k, a.shape, jnp.float64), p,
                          gn.CellParams(*jax.random.split(kp, 3)))  # fmt: skip
        plus = f(h + eps * vh, jax.tree.map(lambda a, v: a + eps * v, p, vp))
        minus = f(h - eps * vh, jax.tree.map(lambda a, v: a - eps * v, p, vp))
        fd = (plus - minus) / (2 * eps)
        an = jnp.sum(gh * vh) + sum(jnp.sum(a * v) for a, v in zip(gp, vp, strict=True))
        np.testing.assert_allclose(fd, an, rtol=1e-6)


def test_model_matches_naive_model_value_and_gradient(x64):
    """End to end (embedding, outer scan with checkpoint + hand VJP, global LN, readout) against the
    gather-based model differentiated by plain autodiff."""
    cfg = gn.Config(grid=4, block=2, inner=2, outer=3, activation="silu")
    params = jax.tree.map(lambda a: a.astype(jnp.float64), gn.init(jax.random.PRNGKey(16), cfg))
    x = jax.random.uniform(jax.random.PRNGKey(17), (2, 784), jnp.float64)
    y = jnp.array([3, 7])

    def ce(fwd):
        def f(p):
            logp = jax.nn.log_softmax(fwd(p, x, cfg))
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        return f

    fast_loss, fast = jax.jit(jax.value_and_grad(ce(gn.forward)))(params)
    naive_loss, naive = jax.jit(jax.value_and_grad(ce(gn.forward_naive)))(params)
    np.testing.assert_allclose(fast_loss, naive_loss, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(naive), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_image_goes_into_the_input_face():
    assert gn.image_layout(32) == (1, 2)
    assert gn.image_layout(16) == (2, 1)
    assert gn.image_layout(28) == (1, 0)
    cfg = gn.Config(grid=16, block=4)
    params = gn.init(jax.random.PRNGKey(0), cfg)
    x = np.zeros((1, 784), np.float32)
    x[0, 0] = 1.0  # top-left pixel
    h = jax.jit(gn.initial_grid, static_argnums=2)(params, x, cfg)
    blank = (0 - gn.MNIST_MEAN) / gn.MNIST_STD
    assert np.isclose(h[0, 1, 1, 0], blank + (1 / gn.MNIST_STD) / 4)  # 2x2 average pool
    np.testing.assert_array_equal(h[0, :, :, 1:], params.embed[:, :, 1:])
    np.testing.assert_array_equal(h[0, 0, :, 0], params.embed[0, :, 0])


def test_depth_grad_norms_shape_and_zero_beyond_reach():
    """Input k=0 cannot influence the readout face with too few outer steps: the W gradient of the
    first layers is then exactly zero (information flow arithmetic, 1 cell per update)."""
    cfg = gn.Config(grid=4, block=2, inner=1, outer=1, global_norm=False)
    params = gn.init(jax.random.PRNGKey(1), cfg)
    x = jax.random.uniform(jax.random.PRNGKey(2), (2, 784))
    norms = jax.jit(gn.depth_grad_norms, static_argnums=3)(params, x, jnp.array([1, 2]), cfg)
    assert norms["w"].shape == (4,)
    # one update: the readout face k = 3 depends on the weights of k = 3 only, and through the
    # grid values k = 2, 3 -- so W of k = 0..2 gets exactly zero gradient
    assert float(norms["w"][3]) > 0 and np.all(np.asarray(norms["w"][:3]) == 0)


@pytest.mark.parametrize("grid,block", [(6, 4), (32, 5), (8, 0), (8, 16)])
def test_bad_block_sizes_fail_clearly(grid, block):
    with pytest.raises(ValueError, match="block size|positive"):
        gn.check_blocking(grid, block)
    with pytest.raises(ValueError):
        gn.Config(grid=grid, block=block).validate()


def test_bad_inputs_fail_clearly():
    p = gn.init_cells(jax.random.PRNGKey(0), 6)
    with pytest.raises(ValueError, match="does not divide grid size 6"):
        gn.step(jnp.zeros((1, 6, 6, 6)), p, 4)
    with pytest.raises(ValueError, match="cubic grids"):
        gn.step(jnp.zeros((1, 6, 6, 5)), p, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        gn.step(jnp.zeros((1, 6, 6, 6)), p, 3, 1, "gelu")
    with pytest.raises(ValueError, match="outer"):
        gn.Config(grid=8, block=4, outer=0).validate()


def test_presets_and_task():
    """The presets are valid configs, and the training task is the shared backprop task."""
    from gridlib.gridnet import experiments as gnx

    for cfg in gnx.PRESETS.values():
        cfg.validate()
    assert set(gnx.FULL_EPOCHS) == set(gnx.PRESETS)
    task = gnx.make_task(gn.Config(grid=4, block=2, inner=2, outer=2))
    state = task.init(jax.random.PRNGKey(0))
    x, y = jnp.full((2, 784), 0.5), jnp.array([3, 7])
    state, metrics = jax.jit(task.train_step)(state, x, y, jax.random.PRNGKey(1))
    assert np.isfinite(metrics["loss"]) and set(metrics) == {"loss", "acc"}


def test_model_modules_stay_off_the_cli():
    """Only gridlib.gridnet.experiments may import the command line and the results store."""
    import subprocess
    import sys

    code = ("import sys, gridlib.gridnet; "
            "bad = {'gridlib.cli', 'gridlib.results', 'gridlib.gridnet.experiments'} & set(sys.modules); "
            "assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
