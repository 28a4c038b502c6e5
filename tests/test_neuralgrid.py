"""NeuralGrid: the forms of the grid layer agree, gradients are right, bad input fails clearly."""

import subprocess
import sys
from collections import namedtuple
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gridlib import neuralgrid as ng
from gridlib.neuralgrid import experiments as ngx


def _rand(key, shape, lo=-1.0, hi=1.0):
    return jax.random.uniform(jax.random.PRNGKey(key), shape, jnp.float64, lo, hi)


# ---- the 2-D layer -------------------------------------------------------------------------


@pytest.mark.parametrize("h", [1, 2, 3, 7])
def test_forms_agree_float64(x64, h):
    x, w, b = _rand(0, (3, h)), _rand(1, (h,)), _rand(2, (h,))
    ref = ng.preact_explicit(x, w, b)
    assert ref.dtype == jnp.float64
    for form in ("fast", "sparse", "unfold"):
        np.testing.assert_allclose(ng.PREACT_FORMS[form](x, w, b), ref, rtol=0, atol=1e-14)


def test_explicit_form_against_plain_numpy(x64):
    """The explicit form written once more without jax: out-of-range neighbours are absent."""
    x, w, b = (np.asarray(_rand(k, s)) for k, s in [(3, (2, 5)), (4, (5,)), (5, (5,))])
    ref = np.zeros_like(x)
    for n in range(2):
        for i in range(5):
            ref[n, i] = b[i] + sum(w[j] * x[n, j] for j in (i - 1, i, i + 1) if 0 <= j < 5)
    np.testing.assert_allclose(ng.preact_fast(jnp.asarray(x), w, b), ref, atol=1e-14)


def test_grid_matrix_is_the_blogs_matrix():
    """A(w) for H = 5 is the blog's matrix: w_j in column j, rows j-1..j+1."""
    w = jnp.arange(1.0, 6.0)
    expected = np.array([[1, 2, 0, 0, 0], [1, 2, 3, 0, 0], [0, 2, 3, 4, 0], [0, 0, 3, 4, 5],
                         [0, 0, 0, 4, 5]], float)  # fmt: skip
    np.testing.assert_array_equal(ng.grid_matrix(w), expected)


def test_one_weight_per_source_neuron(x64):
    """dz/dw_j is x_j on outputs j-1, j, j+1 and zero elsewhere (the weight sits on the source)."""
    x, w, b = _rand(6, (6,)), _rand(7, (6,)), _rand(8, (6,))
    jac = jax.jacobian(ng.preact_fast, argnums=1)(x, w, b)  # (out i, weight j)
    expected = np.where(np.abs(np.arange(6)[:, None] - np.arange(6)[None, :]) <= 1, x[None, :], 0)
    np.testing.assert_allclose(jac, expected, atol=1e-15)


def test_seed_double_loop_is_shifted_by_one(x64):
    """The original naive loop computes z_i = sum_{j=i-2..i} w_j x_j + b_i: shifted by one."""
    x, w, b = (np.asarray(_rand(k, s)) for k, s in [(9, (2, 6)), (10, (6,)), (11, (6,))])
    seed = ng.seed_loop_preact(x, w, b)
    ours = np.asarray(ng.preact_fast(jnp.asarray(x), w, b))
    nobias = ours - b
    np.testing.assert_allclose(seed[:, 1:], nobias[:, :-1] + b[1:], atol=1e-14)
    np.testing.assert_allclose(seed[:, 0], w[0] * x[:, 0] + b[0], atol=1e-14)
    assert np.abs(seed - ours).max() > 0.1  # a different model, not a rounding difference


def test_sincos_float32_accuracy():
    z = np.random.default_rng(0).uniform(-1e5, 1e5, 200_000).astype(np.float32)
    z[:7] = [0.0, -0.0, np.pi / 4, -np.pi / 4, np.pi / 2, 3.0, -1e-8]
    s, c = jax.jit(ng.sincos)(jnp.asarray(z))
    assert s.dtype == jnp.float32
    z64 = z.astype(np.float64)
    assert np.abs(np.asarray(s, np.float64) - np.sin(z64)).max() < 2e-7
    assert np.abs(np.asarray(c, np.float64) - np.cos(z64)).max() < 2e-7


def test_sincos_float64_is_exact(x64):
    z = _rand(12, (100,), -50, 50)
    s, c = ng.sincos(z)
    np.testing.assert_array_equal(s, jnp.sin(z))
    np.testing.assert_array_equal(c, jnp.cos(z))


@pytest.mark.parametrize("fn, ref", [("fast_sin", np.sin), ("fast_cos", np.cos)])
def test_fast_sin_cos_float32_accuracy(fn, ref):
    """One polynomial after a reduction modulo pi: within 2e-7 of float64 for |z| <= 1e5,
    including the multiples of pi/2 (where the reduction and the sign flips turn over)."""
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.uniform(-1e5, 1e5, 200_000), rng.uniform(-10, 10, 100_000),
                        np.arange(-4000, 4001) * np.pi / 2]).astype(np.float32)  # fmt: skip
    z[:6] = [0.0, -0.0, -1e-8, 1e5, -1e5, np.float32(np.pi)]
    got = jax.jit(getattr(ng.model, fn))(jnp.asarray(z))
    assert got.dtype == jnp.float32
    assert np.abs(np.asarray(got, np.float64) - ref(z.astype(np.float64))).max() < 2e-7


def test_fast_sin_cos_float64_are_the_library_functions(x64):
    z = _rand(40, (100,), -50, 50)
    np.testing.assert_array_equal(ng.model.fast_sin(z), jnp.sin(z))
    np.testing.assert_array_equal(ng.model.fast_cos(z), jnp.cos(z))


def test_layer_custom_vjp_matches_autodiff(x64):
    """The hand-written backward of the fast layer equals autodiff of sin(explicit form)."""
    x, w, b, g = _rand(13, (4, 7)), _rand(14, (7,)), _rand(15, (7,)), _rand(16, (4, 7))
    out, vjp = jax.vjp(ng.grid_layer, x, w, b)
    ref_out, ref_vjp = jax.vjp(lambda *a: jnp.sin(ng.preact_explicit(*a)), x, w, b)
    np.testing.assert_allclose(out, ref_out, atol=1e-14)
    for got, ref in zip(vjp(g), ref_vjp(g), strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-13)


def _np_preact(x, w, b):
    """The explicit formula in plain float64 numpy."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    h = x.shape[-1]
    z = np.broadcast_to(b, x.shape).copy()
    for i in range(h):
        for j in (i - 1, i, i + 1):
            if 0 <= j < h:
                z[..., i] += w[j] * x[..., j]
    return z


def test_float32_layer_matches_float64_reference():
    x, w, b = (jax.random.uniform(jax.random.PRNGKey(k), s, minval=-3, maxval=3)
               for k, s in [(17, (8, 32)), (18, (32,)), (19, (32,))])  # fmt: skip
    got = ng.grid_layer(x, w, b)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got, np.float64), np.sin(_np_preact(x, w, b)), atol=2e-6)
    g = jax.grad(lambda w: ng.grid_layer(x, w, b).sum())(w)
    c = np.cos(_np_preact(x, w, b))
    s = c.copy()
    s[:, 1:] += c[:, :-1]
    s[:, :-1] += c[:, 1:]
    np.testing.assert_allclose(g, (np.asarray(x, np.float64) * s).sum(0), rtol=1e-5, atol=1e-5)


# ---- the network and its gradient ---------------------------------------------------------


def _small_net():
    return ng.init_network(jax.random.PRNGKey(20), n_in=6, height=5, width=4, n_classes=3,
                           dtype=jnp.float64)  # fmt: skip


@partial(jax.jit, static_argnames="form")
def _loss(params, x, y, form="fast"):
    return ngx.cross_entropy(ng.network_apply(params, x, form), y).mean()


def test_network_forms_agree(x64):
    p = _small_net()
    x = _rand(21, (5, 6), 0, 1)
    ref = ng.network_apply(p, x, "explicit")
    for form in ("fast", "sparse", "unfold"):
        np.testing.assert_allclose(ng.network_apply(p, x, form), ref, atol=1e-13)


def _plain_apply(params, x):
    """The network written plainly: the explicit pre-activation and ``jnp.sin``, differentiated
    by autodiff (no custom VJP, no polynomial), column after column in a Python loop."""
    h = ng.normalise(x) @ params.w_in + params.b_in
    for w, b in zip(params.grid.weight, params.grid.bias, strict=True):
        h = jnp.sin(ng.preact_explicit(h, w, b))
    return h @ params.w_out + params.b_out


def _sincos_layer():
    """The layer as it was before the one-polynomial functions: :func:`sincos` in the forward
    pass and the same hand-written VJP (the form the float32 comparison is against)."""

    @jax.custom_vjp
    def f(x, w, b):
        return ng.sincos(ng.preact_fast(x, w, b))[0]

    def fwd(x, w, b):
        a, c = ng.sincos(ng.preact_fast(x, w, b))
        return a, (x, w, c)

    def bwd(res, g):
        x, w, c = res
        s = ng.neighbour_sum(g * c)
        return w * s, (x * s).sum(0), (g * c).sum(0)

    f.defvjp(fwd, bwd)
    return f


_SINCOS_LAYER = _sincos_layer()


def _sincos_apply(params, x):
    h = ng.normalise(x) @ params.w_in + params.b_in
    grid = (params.grid.weight, params.grid.bias)
    h = jax.lax.scan(lambda h, p: (_SINCOS_LAYER(h, p[0], p[1]), None), h, grid)[0]
    return h @ params.w_out + params.b_out


def _loss_and_grads(apply, params, x, y):
    def loss(p):
        return ngx.cross_entropy(apply(p, x), y).mean()

    return jax.value_and_grad(loss)(params), apply(params, x)


# uneven shapes: (n_in, height, width, classes, batch); heights 1 and 2 have no interior neuron
UNEVEN = [(7, 5, 3, 4, 6), (5, 9, 6, 3, 2), (3, 1, 4, 2, 5), (4, 2, 7, 3, 3), (6, 13, 2, 5, 1)]


def _max_differences(apply, ref_apply, shape, dtype, seed=0):
    """Largest |difference| of the logits and of every gradient leaf, ``apply`` vs ``ref_apply``,
    on a random network of ``shape`` (weights and biases of the grid drawn, not zero)."""
    n_in, h, w, c, batch = shape
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    p = ng.init_network(keys[0], n_in, h, w, c, dtype=dtype)
    grid = ng.GridParams(jax.random.uniform(keys[1], (w, h), dtype, -1.5, 1.5),
                         jax.random.uniform(keys[2], (w, h), dtype, -1.0, 1.0))  # fmt: skip
    p = p._replace(grid=grid)
    x = jax.random.uniform(keys[3], (batch, n_in), dtype)
    y = jnp.arange(batch) % c
    (l1, g1), z1 = _loss_and_grads(apply, p, x, y)
    (l2, g2), z2 = _loss_and_grads(ref_apply, p, x, y)
    grads = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True))
    return float(jnp.abs(z1 - z2).max()), abs(float(l1 - l2)), grads


@pytest.mark.parametrize("shape", UNEVEN)
def test_network_equals_plain_form_float64(x64, shape):
    """Logits, loss and every gradient of the production network (fast_sin / fast_cos layer,
    hand-written VJP, lax.scan) equal the plain form (explicit sum, jnp.sin, autodiff)."""
    logits, loss, grads = _max_differences(ng.network_apply, _plain_apply, shape, jnp.float64)
    assert logits < 1e-10 and loss < 1e-10 and grads < 1e-10, (logits, loss, grads)


@pytest.mark.parametrize("shape", UNEVEN[:3] + [(20, 32, 16, 10, 8)])
def test_network_float32_equals_previous_and_plain_forms(shape):
    """float32: the network with fast_sin / fast_cos equals the previous sincos layer and the
    plain jnp.sin form to float32 rounding (a few 1e-7 per column, over the grid's depth)."""
    for ref in (_sincos_apply, _plain_apply):
        logits, loss, grads = _max_differences(ng.network_apply, ref, shape, jnp.float32)
        assert logits < 2e-5 and loss < 2e-5 and grads < 2e-5, (ref.__name__, logits, loss, grads)


@pytest.mark.parametrize("planted", ["cos_is_sin", "no_neighbours_backward", "no_sign_flip"])
def test_planted_bugs_fail_the_equality(x64, monkeypatch, planted):
    """The equality tests above see each planted bug: the comparison fails by far more than its
    tolerance (so a passing test is evidence, not a tolerance too loose to fail)."""
    if planted == "cos_is_sin":  # the stored derivative is the wrong function
        monkeypatch.setattr(ng.model, "fast_cos", lambda z: jnp.sin(z))
    elif planted == "no_neighbours_backward":  # the backward pass forgets the neighbour sum
        broken = ng.model._sine_layer(ng.preact_fast, lambda u: u, 1, "planted")
        monkeypatch.setattr(ng.model, "grid_layer", broken)
    else:  # the float32 polynomial without its (-1)^q sign: wrong wherever |z| > pi/2
        real = ng.model._odd_sin
        monkeypatch.setattr(ng.model, "_odd_sin", lambda r, q: real(r, jnp.zeros_like(q)))
    shape = UNEVEN[0]
    if planted == "no_sign_flip":
        jax.config.update("jax_enable_x64", False)
        logits, loss, grads = _max_differences(ng.network_apply, _plain_apply, shape, jnp.float32)
        assert max(logits, grads) > 1e-2, (logits, grads)
    else:
        logits, loss, grads = _max_differences(ng.network_apply, _plain_apply, shape, jnp.float64)
        assert logits < 1e-10 and grads > 1e-3, (logits, grads)  # the forward pass is still right


def test_network_gradient_matches_finite_differences(x64):
    p = _small_net()
    x, y = _rand(22, (5, 6), 0, 1), jnp.array([0, 1, 2, 1, 0])
    g = jax.grad(_loss)(p, x, y)
    flat, unravel = ravel_pytree(p)
    gflat = ravel_pytree(g)[0]
    rng = np.random.default_rng(0)
    eps = 1e-6
    for _ in range(5):
        d = rng.normal(size=flat.shape)
        d /= np.linalg.norm(d)
        fd = (_loss(unravel(flat + eps * d), x, y) - _loss(unravel(flat - eps * d), x, y)) / (2 * eps)
        np.testing.assert_allclose(float(gflat @ d), float(fd), rtol=1e-6, atol=1e-9)


def test_grid_gradient_per_coordinate_finite_differences(x64):
    """Every grid weight and bias separately (catches a wrong index that random directions blur).

    The finite differences use the cell-by-cell numpy loss, so no JAX code is on that side.
    """
    p = _small_net()
    x, y = np.asarray(_rand(23, (3, 6), 0, 1)), [2, 0, 1]
    g = jax.grad(_loss)(p, jnp.asarray(x), jnp.asarray(y)).grid

    def numpy_loss(grid):
        q = p._replace(grid=ng.GridParams(*grid))
        return np.mean([ng.naive_loop_grads(q, x[n], y[n])[0] for n in range(3)])

    eps = 1e-6
    for k, field in enumerate(("weight", "bias")):
        a = np.asarray(getattr(p.grid, field))
        for idx in np.ndindex(a.shape):
            plus, minus = [np.asarray(v).copy() for v in p.grid], [np.asarray(v).copy() for v in p.grid]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            fd = (numpy_loss(plus) - numpy_loss(minus)) / (2 * eps)
            assert abs(float(getattr(g, field)[idx]) - fd) < 1e-8, (field, idx)


def test_naive_loop_gradient_matches_autodiff(x64):
    p = _small_net()
    x = np.asarray(_rand(24, (6,), 0, 1))
    loss, grads = ng.naive_loop_grads(p, x, 2)
    ref_loss = _loss(p, jnp.asarray(x)[None], jnp.array([2]))
    ref = jax.grad(_loss)(p, jnp.asarray(x)[None], jnp.array([2]))
    assert abs(loss - float(ref_loss)) < 1e-12
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_init_matches_the_original():
    p = ng.init_network(jax.random.PRNGKey(0), 784, 64, 64, 10)
    w = np.asarray(p.grid.weight)
    assert w.shape == (64, 64) and w.min() >= -1 and w.max() <= 1 and w.std() > 0.5  # U(-1, 1)
    assert not np.asarray(p.grid.bias).any()
    assert np.abs(np.asarray(p.w_in)).max() <= 1 / np.sqrt(784)
    n_params = sum(a.size for a in jax.tree.leaves(p))
    assert n_params == 784 * 64 + 64 + 2 * 64 * 64 + 64 * 10 + 10  # the spec's 59.2k minus pads


def test_class_mean_activations_shape():
    p = ng.init_network(jax.random.PRNGKey(0), 6, 5, 4, 3)
    x = np.random.default_rng(0).uniform(size=(30, 6)).astype(np.float32)
    y = np.arange(30) % 3
    pat = ng.class_mean_activations(p, x, y, n_classes=3, per_class=4)
    assert pat.shape == (3, 5, 4)
    np.testing.assert_allclose(pat[1], np.asarray(ng.grid_activations(p, x[y == 1][:4])).mean(0),
                               atol=1e-6)
    with pytest.raises(ValueError, match="class 3 has no examples"):
        ng.class_mean_activations(p, x, y, n_classes=4)


# ---- the 3-D variant ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 6), (5, 3), (1, 4)])
def test_3d_forms_agree_non_square(x64, shape):
    x, w, b = _rand(25, (2, *shape)), _rand(26, shape), _rand(27, shape)
    ref = ng.preact3d_explicit(x, w, b)
    np.testing.assert_allclose(ng.preact3d_fast(x, w, b), ref, atol=1e-14)
    np.testing.assert_allclose(ng.preact3d_sparse(x, w, b), ref, atol=1e-14)


def test_3d_layer_vjp_matches_autodiff(x64):
    x, w, b, g = _rand(28, (3, 4, 5)), _rand(29, (4, 5)), _rand(30, (4, 5)), _rand(31, (3, 4, 5))
    _, vjp = jax.vjp(ng.grid3d_layer, x, w, b)
    # the sparse-matrix form is checked against the explicit one above; autodiff through it
    _, ref_vjp = jax.vjp(lambda *a: jnp.sin(ng.preact3d_sparse(*a)), x, w, b)
    for got, ref in zip(vjp(g), ref_vjp(g), strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-13)


def test_3d_network_non_square_and_gradient(x64):
    p = ng.init_grid3d(jax.random.PRNGKey(1), (3, 5), n_layers=3, n_classes=4, dtype=jnp.float64)
    x, y = _rand(32, (2, 15), 0, 1), jnp.array([1, 3])
    logits = ng.grid3d_apply(p, x)
    assert logits.shape == (2, 4)
    np.testing.assert_allclose(ng.grid3d_apply(p, x.reshape(2, 3, 5)), logits)
    # reference forward with the explicit 3-D form, written independently of grid3d_apply (sparse form)
    h = 2 * x.reshape(2, 3, 5) - 1
    for l in range(3):
        h = jnp.sin(ng.preact3d_sparse(h, p.weight[l], p.bias[l]))
    np.testing.assert_allclose(logits, h.reshape(2, -1) @ p.w_out + p.b_out, atol=1e-13)

    @jax.jit
    def loss(q):
        return ngx.cross_entropy(ng.grid3d_apply(q, x), y).mean()

    flat, unravel = ravel_pytree(p)
    d = np.random.default_rng(1).normal(size=flat.shape)
    eps = 1e-6
    fd = (loss(unravel(flat + eps * d)) - loss(unravel(flat - eps * d))) / (2 * eps)
    g = ravel_pytree(jax.grad(loss)(p))[0]
    np.testing.assert_allclose(float(g @ d), float(fd), rtol=1e-6)


def test_3d_refuses_mismatched_input():
    p = ng.init_grid3d(jax.random.PRNGKey(1), (3, 5), n_layers=2, n_classes=4)
    with pytest.raises(ValueError, match="16 pixels but the grid slices are 3 x 5"):
        ng.grid3d_apply(p, jnp.zeros((2, 16)))
    with pytest.raises(ValueError, match="does not match grid slices of 3 x 5"):
        ng.grid3d_apply(p, jnp.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="image_shape must be"):
        ng.init_grid3d(jax.random.PRNGKey(1), (28,), 2, 10)


# ---- configuration and training -----------------------------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(height=0), "height must be a positive integer"),
        (dict(width=2.5), "width must be a positive integer"),
        (dict(lr=-1e-3), "lr must be a positive finite number"),
        (dict(lr=float("nan")), "lr must be a positive finite number"),
        (dict(lr_decay=1.5), "lr_decay must be in"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(dataset="cifar10"), "dataset must be one of"),
    ],
)
def test_bad_config_fails_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        ngx.Config(**bad).validate()


def test_bad_calls_fail_clearly():
    p = ng.init_grid(jax.random.PRNGKey(0), 5, 3)
    with pytest.raises(ValueError, match="input has 4 features but the grid is 5 high"):
        ng.grid_forward(p, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="unknown grid form 'conv'"):
        ng.layer(jnp.zeros((2, 5)), p.weight[0], p.bias[0], "conv")
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        ngx.Config3D(n_layers=0).validate()
    with pytest.raises(ValueError, match="preset must be one of"):
        ngx.neuralgrid_fashion(preset="paper")


def test_presets():
    assert ngx.BLOG == ngx.Config(64, 64, 1e-4, 256, 300, 100, 0.1, "fashion_mnist")
    assert ngx.SHORT.height == 64 and ngx.SHORT.epochs < ngx.BLOG.epochs
    sched = ngx.lr_schedule(ngx.BLOG, steps_per_epoch=234)
    for step, lr in [(0, 1e-4), (100 * 234 - 1, 1e-4), (100 * 234, 1e-5), (200 * 234, 1e-6)]:
        assert np.isclose(float(sched(step)), lr, rtol=1e-5)


def test_training_learns_a_separable_problem():
    """A tiny grid trained through gridlib.experiment.fit beats chance on held-out data."""
    from gridlib.experiment import fit

    rng = np.random.default_rng(0)
    Splits = namedtuple("Splits", "x_train y_train x_val y_val x_test y_test")
    x = rng.uniform(size=(600, 8)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int32)
    splits = Splits(x[:500], y[:500], x[:0], y[:0], x[500:], y[500:])
    cfg = ngx.Config(height=6, width=4, lr=1e-2, batch_size=20, epochs=8, lr_step_epochs=100)
    task = ngx.make_task(cfg, 500 // 20, n_in=8, n_classes=2)
    run = fit(task, splits, epochs=8, batch_size=20, eval_on=("test",), progress=False)
    assert run.history["test/acc"][-1] > 0.85
    assert run.history["train/loss"][-1] < run.history["train/loss"][0]


def test_experiment_writes_results_and_resumes(tmp_results):
    """The CLI experiment on a small real subset: results JSON with patterns; a rerun resumes."""
    from gridlib import results

    kw = dict(preset="short", epochs=1, height=6, width=3, n_train=512, n_test=200, progress=False)
    m = ngx.neuralgrid_fashion(**kw)
    rec = results.load_scratch("neuralgrid/fashion_mnist_short_variant_seed0")
    assert rec["config"]["is_preset"] is False and rec["config"]["height"] == 6
    assert rec["metrics"]["test_acc"] == m["test_acc"]
    assert np.asarray(rec["extra"]["pattern_end"]).shape == (10, 6, 3)
    assert (tmp_results / "runs/neuralgrid/fashion_mnist_short_variant_seed0").is_dir()
    again = ngx.neuralgrid_fashion(**kw)  # resumes from the finished checkpoint: same numbers
    assert again["test_acc"] == m["test_acc"]


def test_model_modules_do_not_import_the_cli_or_results():
    """Only the experiments module may pull in gridlib.cli / gridlib.results (house plan)."""
    code = ("import sys, gridlib.neuralgrid; "
            "print(sorted(m for m in ('gridlib.cli', 'gridlib.results', 'gridlib.neuralgrid.experiments') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert all(getattr(ng, n).__doc__ for n in ng.__all__ if n != "PREACT_FORMS")
