"""The jaxpr operation counter against counts worked out by hand for each construct."""

import jax
import jax.numpy as jnp
import pytest

from gridlib.flops import count_flops, count_ops, count_stages

A, B = jnp.ones((4, 3)), jnp.ones((3, 5))


def test_matrix_product_is_two_flops_per_multiply_add():
    assert count_flops(lambda a, b: a @ b, A, B) == 2 * 4 * 5 * 3


def test_batched_contraction_counts_batch_and_contracted_dims():
    f = lambda x, y: jnp.einsum("bij,bjk->bik", x, y)  # noqa: E731
    assert count_flops(f, jnp.ones((7, 4, 3)), jnp.ones((7, 3, 5))) == 2 * 7 * 4 * 5 * 3


def test_elementwise_counts_one_per_output_element_and_reductions_per_input():
    assert count_flops(lambda x: jnp.tanh(x) * 2.0 + 1.0, A) == 3 * 12
    assert count_flops(lambda x: x.sum(), A) == 12


def test_scan_body_is_multiplied_by_its_length():
    """XLA's cost analysis counts a loop body once; this counter must not."""
    def f(x, n):
        return jax.lax.scan(lambda c, _: (c @ x, None), x, None, length=n)[0]
    one = count_flops(lambda x: f(x, 1), jnp.ones((8, 8)))
    assert one == 2 * 8 * 8 * 8
    assert count_flops(lambda x: f(x, 10), jnp.ones((8, 8))) == 10 * one


def test_nested_jit_and_custom_derivatives_are_entered():
    inner = jax.jit(lambda x: x * x)
    assert count_flops(lambda x: inner(x) + 1.0, A) == 2 * 12
    assert count_flops(jax.nn.relu, A) > 0  # a custom_jvp function


def test_cond_counts_the_costliest_branch_and_integers_count_zero():
    f = lambda p, x: jax.lax.cond(p, lambda y: y @ y.T, lambda y: jnp.zeros((4, 4)) + 1.0, x)  # noqa: E731
    assert count_flops(f, True, A) == 2 * 4 * 4 * 3
    assert count_flops(lambda i: i * 3 + 1, jnp.ones(5, jnp.int32)) == 0


def test_gradient_costs_more_than_the_forward_pass():
    loss = lambda w, x: jnp.sum(jnp.tanh(x @ w) ** 2)  # noqa: E731
    w, x = jnp.ones((3, 5)), jnp.ones((4, 3))
    assert count_flops(jax.grad(loss), w, x) > count_flops(loss, w, x)


def test_while_loop_needs_a_trip_count():
    f = lambda x: jax.lax.fori_loop(0, 3, lambda i, c: c * 2.0, x)  # noqa: E731
    g = lambda x, n: jax.lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))  # noqa: E731
    with pytest.raises(ValueError, match="trip count"):
        count_flops(g, A, 3)
    assert count_flops(g, A, 3, trip_count=3) == 3 * 12
    assert count_flops(f, A) == 3 * 12  # a static fori_loop is a scan


# ----------------------------------------------------------------- by kind, and sequential stages


def test_count_ops_splits_products_transcendentals_and_the_rest():
    """sin(a @ b) * 2 + sqrt(a @ b): one product, 20 sines, 60 other operations (a multiply,
    a square root and an add per output element; sqrt is not a transcendental)."""
    def f(a, b):
        p = a @ b
        return jnp.sin(p) * 2.0 + jnp.sqrt(p)

    c = count_ops(f, A, B)
    assert (c.matmul, dict(c.transcendental), c.other) == (2 * 4 * 5 * 3, {"sin": 20}, 3 * 20)
    assert c.total == count_flops(f, A, B)


def test_count_ops_multiplies_loops_and_sums_to_count_flops_under_grad():
    def loss(w, x):
        h = jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=6)[0]
        return jnp.sum(jnp.exp(h))

    w, x = jnp.ones((5, 5)) * 0.1, jnp.ones((3, 5))
    c = count_ops(loss, w, x)
    assert c.matmul == 6 * 2 * 3 * 5 * 5 and c.transcendental == {"tanh": 6 * 15, "exp": 15}
    g = count_ops(jax.grad(loss), w, x)
    assert g.total == count_flops(jax.grad(loss), w, x) and g.matmul > c.matmul


def test_typed_prng_keys_count_zero():
    f = lambda k, x: x * jax.random.uniform(jax.random.fold_in(k, 1), x.shape)  # noqa: E731
    assert count_ops(f, jax.random.key(0), A).total == count_flops(f, jax.random.key(0), A)


def _scan(x, n, f=lambda c: c * 2.0, unroll=1):
    return jax.lax.scan(lambda c, _: (f(c), None), x, None, length=n, unroll=unroll)[0]


def test_stages_add_along_a_dependency_chain_and_not_across_independent_loops():
    assert count_stages(lambda x: _scan(x, 7), A) == 7
    assert count_stages(lambda x: _scan(_scan(x, 7), 5), A) == 12  # the second reads the first
    assert count_stages(lambda x: _scan(x, 7) + _scan(x, 5), A) == 7  # independent: the longer
    assert count_stages(lambda x: x * 2.0 + 1.0, A) == 0  # no loop, no stage


def test_stages_multiply_through_nested_loops_and_divide_by_unrolling():
    assert count_stages(lambda x: _scan(x, 4, lambda c: _scan(c, 3)), A) == 12
    assert count_stages(lambda x: _scan(x, 8, unroll=4), A) == 2  # two trips of four fused bodies
    assert count_stages(lambda x: _scan(x, 4, lambda c: _scan(c, 3), unroll=2), A) == 12
    # a gradient runs the loop forwards, then its transpose backwards
    assert count_stages(jax.grad(lambda x: jnp.sum(_scan(x, 7, jnp.sin))), A) == 14
