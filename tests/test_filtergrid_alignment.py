"""The alignment study (gridlib.filtergrid.alignment): its measures against naive loops, its
sanity column (RTRL) exact, the rules exact where their modules say so and ordered where the
hierarchy says so, the sequence-length construction, the snapshots of fit's own run, and one-line
refusals. Everything in float64 on small grids, so the checks are exact to rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gridlib import data, experiment, report
from gridlib.filtergrid import alignment as al
from gridlib.filtergrid import model
from gridlib.filtergrid.cell import GridParams
from gridlib.filtergrid.experiments import make_task

pytestmark = pytest.mark.usefixtures("float64_module")

N, M, T, B = 3, 3, 6, 2
RULES = ("snap0", "snap1", "snap2", "online_snap1", "rtrl")


def _problem(n=N, m=M, t=T, b=B, seed=0):
    """Gradient-check init (tau in [5, 200] ms), inputs 0.5 N(0, 1), float64; labels (B,)."""
    params = model.init_params(jax.random.PRNGKey(seed), n, m, tau_min=5e-3, tau_max=200e-3,
                               dtype=jnp.float64)
    xs = 0.5 * jax.random.normal(jax.random.PRNGKey(seed + 1), (b, t, n), jnp.float64)
    return params, xs, jnp.arange(b) % m


@pytest.fixture(scope="module")
def grads(float64_module):
    """Batch-mean gradients of the SnAP rules, online SnAP-1, RTRL and both exact references on
    one 3 x 3, T = 6 batch (truncated BPTT has its own tests in test_filtergrid_rules.py)."""
    params, xs, labels = _problem()
    return al.batch_gradients(params, xs, labels, RULES, chunk=1)[2]


def _naive(v, w):
    """Cosine and relative error of two flat vectors, written out."""
    dot = sum(a * b for a, b in zip(v, w, strict=True))
    nv, nw = np.sqrt(sum(a * a for a in v)), np.sqrt(sum(b * b for b in w))
    return dot / (nv * nw), np.sqrt(sum((a - b) ** 2 for a, b in zip(v, w, strict=True))) / nw


def test_rtrl_is_exact(grads):
    """The sanity column: exact RTRL equals BPTT in float64, overall and in every group."""
    a = al.alignment(grads["rtrl"], grads["bptt/sum"])
    assert abs(float(a.cosine) - 1) < 1e-9 and float(a.rel_error) < 1e-9
    assert np.all(np.abs(a.group_cosine - 1) < 1e-9) and np.all(a.group_rel_error < 1e-9)


def test_snap_rules_are_ordered_in_cosine_and_approximate(grads):
    """3 x 3, T = 6: every cell but the last three has a descendant at distance >= 3, so
    SnAP-2 is approximate too; the cosine still rises SnAP-0 < SnAP-1 < SnAP-2 < 1."""
    cos = [float(al.alignment(grads[f"snap{k}"], grads["bptt/sum"]).cosine) for k in range(3)]
    assert cos[0] < cos[1] < cos[2] < 1 - 1e-9, cos


def test_compare_uses_the_reference_of_each_rules_loss(grads):
    """online_snap1 is judged against BPTT of the per-step loss, the others of the sum loss;
    compare() gives the numbers of alignment() on batch_gradients()'s gradients."""
    params, xs, labels = _problem()
    out = al.compare(params, xs, labels, ("snap1", "online_snap1"), cells=True, chunk=1)
    for rule, ref in (("snap1", "bptt/sum"), ("online_snap1", "bptt/per_t")):
        want = al.alignment(grads[rule], grads[ref])
        np.testing.assert_allclose(out.rules[rule].group_rel_error, want.group_rel_error, rtol=1e-12)
        np.testing.assert_allclose(out.cells[rule].rel_error,
                                   al.cell_alignment(grads[rule], grads[ref]).rel_error, rtol=1e-12)
    assert al.loss_mode("online_snap1") == "per_t" and al.loss_mode("tbptt4") == "sum"
    assert 0 <= float(out.acc) <= 1 and float(out.loss) > 0


def test_alignment_per_cell_row_and_group_match_naive_loops(grads):
    """Per cell: the 4-vector (log_tau, w_left, w_top, bias) of cell (i, j); per row: the 4 M
    parameters of row i; per group: one field. Every entry checked against a written-out loop."""
    g, ref = grads["snap0"], grads["bptt/sum"]
    cells, whole = al.cell_alignment(g, ref), al.alignment(g, ref)
    assert cells.cosine.shape == cells.rel_error.shape == (N, M)
    assert cells.row_cosine.shape == cells.row_rel_error.shape == cells.row_norm_ratio.shape == (N,)
    for i in range(N):
        for j in range(M):
            cos, rel = _naive([float(z[i, j]) for z in g], [float(z[i, j]) for z in ref])
            assert abs(cells.cosine[i, j] - cos) < 1e-12 and abs(cells.rel_error[i, j] - rel) < 1e-12
        cos, rel = _naive([float(z[i, j]) for z in g for j in range(M)],
                          [float(z[i, j]) for z in ref for j in range(M)])
        assert abs(cells.row_cosine[i] - cos) < 1e-12 and abs(cells.row_rel_error[i] - rel) < 1e-12
        ratio = np.linalg.norm([float(z[i, j]) for z in g for j in range(M)]) / np.linalg.norm(
            [float(z[i, j]) for z in ref for j in range(M)])
        assert abs(cells.row_norm_ratio[i] - ratio) < 1e-12 * ratio
    for q, name in enumerate(al.GROUPS):
        cos, rel = _naive(np.ravel(getattr(g, name)), np.ravel(getattr(ref, name)))
        assert abs(whole.group_cosine[q] - cos) < 1e-12 and abs(whole.group_rel_error[q] - rel) < 1e-12
    cos, rel = _naive(np.concatenate([np.ravel(z) for z in g]), np.concatenate([np.ravel(z) for z in ref]))
    assert abs(whole.cosine - cos) < 1e-12 and abs(whole.rel_error - rel) < 1e-12
    assert np.all(cells.rel_error[:-1] > 1e-6)  # SnAP-0 misses the carry in the upper rows


def test_snap1_is_exact_at_T1():
    """snap1.py: "SnAP-1 is exact at T = 1" (every J(t-1) is zero), here on the first step of
    the batch, made by sequences_of_length, and not at T = 6."""
    params, xs, labels = _problem()
    a = al.compare(params, al.sequences_of_length(xs, 1), labels, ("snap1",)).rules["snap1"]
    assert float(a.rel_error) < 1e-12 and abs(float(a.cosine) - 1) < 1e-12
    assert float(al.compare(params, xs, labels, ("snap1",), chunk=1).rules["snap1"].rel_error) > 1e-6


def test_sequences_of_length_takes_the_first_rows_or_holds_each_row():
    rows = np.arange(2 * 28 * 3, dtype=float).reshape(2, 28, 3)  # (B, R, N)
    np.testing.assert_array_equal(al.sequences_of_length(rows, 7), rows[:, :7])
    np.testing.assert_array_equal(al.sequences_of_length(rows, 28), rows)
    for hold in (2, 4):
        seq = np.asarray(al.sequences_of_length(rows, 28 * hold))
        assert seq.shape == (2, 28 * hold, 3)
        for t in range(28 * hold):
            np.testing.assert_array_equal(seq[:, t], rows[:, t // hold])


@pytest.mark.parametrize("t_len", [0, -3, 30, 2.0, True])
def test_sequences_of_length_refuses_other_lengths(t_len):
    with pytest.raises(ValueError, match="T") as err:
        al.sequences_of_length(np.zeros((28, 3)), t_len)
    assert "\n" not in str(err.value)


def _refusals():
    params, xs, labels = _problem(b=2, t=2)
    g = GridParams(*(np.ones((N, M)),) * 4)
    return {
        "unknown rule": (lambda: al.batch_gradients(params, xs, labels, ("snap3",)), "rules must be"),
        "no rules": (lambda: al.compare(params, xs, labels, ()), "rules must be"),
        "chunk": (lambda: al.batch_gradients(params, xs, labels, ("snap1",), chunk=3), "chunk must"),
        "xs shape": (lambda: al.batch_gradients(params, xs[0], labels, ("snap1",)), "need xs"),
        "labels": (lambda: al.batch_gradients(params, xs, labels[:1], ("snap1",)), "need xs"),
        "grid shapes": (lambda: al.alignment(GridParams(*(np.ones((2, 3)),) * 4), g), "exact one is"),
        "zero exact": (lambda: al.alignment(g, jax.tree.map(np.zeros_like, g)), "exact gradient is zero"),
        "no lengths": (lambda: al.over_lengths(params, xs, labels, ()), "at least one"),
        "steps": (lambda: al.train_snapshots(None, _splits(), (-1,)), "steps must"),
    }


REFUSALS = ("unknown rule", "no rules", "chunk", "xs shape", "labels", "grid shapes", "zero exact",
            "no lengths", "steps")


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_inputs_are_refused_in_one_line(case):
    fn, match = _refusals()[case]
    with pytest.raises(ValueError, match=match) as err:
        fn()
    assert "\n" not in str(err.value)


def test_float32_is_refused():
    params, xs, labels = _problem(b=1, t=1)
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="enable jax_enable_x64") as err:
            al.batch_gradients(params, xs, labels, ("snap1",))
    finally:
        jax.config.update("jax_enable_x64", True)
    assert "\n" not in str(err.value)


def _splits(n=8, t=2):
    """Random 'images' of ``t`` rows of 28 pixels, two classes."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, t * 28)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.int32)
    return data.Splits(x, y, x[:0], y[:0], x[:2], y[:2])


def test_train_snapshots_are_fits_run_step_for_step():
    """A 3 x 2 grid, 8 sequences, batch 2 (4 steps an epoch): the snapshot after 8 steps is
    fit's state after 2 epochs, though the snapshots stop at step 2 and cross an epoch. (The
    loop is the rule's business only through train_step; BPTT compiles fastest.)"""
    task = make_task(rule="bptt", n_rows=3, n_cols=2)
    splits = _splits()
    snaps = al.train_snapshots(task, splits, (0, 2, 8), batch_size=2, seed=3)
    assert sorted(snaps) == [0, 2, 8]
    run = experiment.fit(task, splits, epochs=2, batch_size=2, seed=3, eval_on=(), progress=False)
    for got, want in zip(snaps[8].params, run.state.params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    start = task.init(jax.random.split(jax.random.PRNGKey(3))[0])
    np.testing.assert_array_equal(snaps[0].params.w_left, start.params.w_left)
    assert float(jnp.abs(snaps[2].params.w_left - start.params.w_left).max()) > 0


def test_every_rule_has_the_display_name_of_its_run_and_back():
    from gridlib.filtergrid.summary import RULE_RUNS

    for label in al.RULES:
        name = al.display_name(label)
        assert al.rule_id(name) == label
        assert name == "RTRL (exact)" or RULE_RUNS[name][:1] == (al.RULES[label][0],)
    assert al.display_name("bptt") == "BPTT" and al.rule_id("BPTT") == "bptt"
    assert al.rule_id("no such rule") is None
    assert report.minus("-0.5 and x-1, 1e-05") == "\u22120.5 and x-1, 1e-05"
