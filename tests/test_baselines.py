"""Backprop baselines against independent numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gridlib import baselines


def test_mlp_matches_numpy(x64):
    params = baselines.mlp_init(jax.random.PRNGKey(0), (5, 7, 3))
    x = np.random.default_rng(0).normal(size=(4, 5))
    h = np.maximum(x @ np.asarray(params[0].w) + np.asarray(params[0].b), 0)
    ref = h @ np.asarray(params[1].w) + np.asarray(params[1].b)
    np.testing.assert_allclose(baselines.mlp_apply(params, jnp.asarray(x)), ref, rtol=1e-6)


def test_cross_entropy_matches_log_softmax():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = jnp.array([1, 2])
    ref = -np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[[0, 1], [1, 2]]
    np.testing.assert_allclose(baselines.cross_entropy(logits, y), ref, rtol=1e-6)


def test_supervised_step_is_gradient_descent(x64):
    """One SGD step equals params - lr * finite-difference gradient of the mean loss."""
    task = baselines.mlp_task((3, 2), optax.sgd(0.1), activation="tanh")
    state = task.init(jax.random.PRNGKey(1))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)))
    y = jnp.array([0, 1, 1, 0, 1, 0])

    def loss(w):
        p = [baselines.Dense(w, state.params[0].b)]
        return float(baselines.cross_entropy(baselines.mlp_apply(p, x), y).mean())

    w0 = np.asarray(state.params[0].w)
    fd = np.zeros_like(w0)
    for idx in np.ndindex(w0.shape):
        e = np.zeros_like(w0)
        e[idx] = 1e-6
        fd[idx] = (loss(jnp.asarray(w0 + e)) - loss(jnp.asarray(w0 - e))) / 2e-6
    new, metrics = task.train_step(state, x, y, jax.random.PRNGKey(0))
    np.testing.assert_allclose(new.params[0].w, w0 - 0.1 * fd, rtol=1e-6, atol=1e-9)
    assert float(metrics["loss"]) == pytest.approx(loss(jnp.asarray(w0)))


@pytest.mark.parametrize("sizes", [(784,), (784, 0, 10), ()])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="at least two positive layer sizes"):
        baselines.mlp_task(sizes, optax.sgd(0.1))


def test_bad_activation_and_sizes_text():
    with pytest.raises(ValueError, match="unknown activation"):
        baselines.mlp_task((4, 2), optax.sgd(0.1), activation="swish")
    assert baselines.parse_sizes("500, 500") == (500, 500) and baselines.parse_sizes("") == ()
    with pytest.raises(ValueError, match="comma-separated"):
        baselines.parse_sizes("5x5")


@pytest.mark.parametrize("parts", [2, 3])
def test_microbatches_compute_the_whole_batch_step(x64, parts):
    """Three Adam steps with the minibatch in ``parts`` equal parts: the same parameters, loss
    and accuracy as the whole batch, to float64 rounding (the accuracy needs the parts' logits
    put back in the examples' order)."""
    rng = np.random.default_rng(2)
    x, y = jnp.asarray(rng.normal(size=(12, 5))), jnp.asarray(rng.integers(0, 3, 12))
    whole = baselines.mlp_task((5, 4, 3), optax.adam(0.05))
    split = baselines.mlp_task((5, 4, 3), optax.adam(0.05), microbatches=parts)
    a = b = whole.init(jax.random.PRNGKey(3))
    for i in range(3):
        key = jax.random.PRNGKey(i)
        (a, ma), (b, mb) = whole.train_step(a, x, y, key), split.train_step(b, x, y, key)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
        assert float(mb["loss"]) == pytest.approx(float(ma["loss"]), rel=1e-12)
        assert float(mb["acc"]) == float(ma["acc"])


def test_microbatches_must_divide_the_batch():
    with pytest.raises(ValueError, match="positive integer"):
        baselines.mlp_task((4, 2), optax.sgd(0.1), microbatches=0)
    task = baselines.mlp_task((4, 2), optax.sgd(0.1), microbatches=3)
    with pytest.raises(ValueError, match="batch size 4 is not a multiple of microbatches=3"):
        task.train_step(task.init(jax.random.PRNGKey(0)), jnp.zeros((4, 4)), jnp.zeros(4, int), None)
