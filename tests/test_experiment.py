"""The training loop: determinism, chunking, resume, the NaN guard and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gridlib import baselines, data, experiment


@pytest.fixture(scope="module")
def small():
    return data.load_mnist(n_train=256, n_test=128, validation=0)


def linear_task(lr=0.1):
    return baselines.mlp_task((784, 10), optax.sgd(lr))


def noisy_task():
    """A task whose update uses its key, to check the per-step keys."""

    def init(key):
        return jnp.zeros(())

    def train_step(state, x, y, key):
        return state + jax.random.uniform(key) + 0.0 * x.sum(), {"loss": state}

    def eval_step(state, x, y):
        return {"value": state * x.shape[0]}

    return experiment.Task(init, train_step, eval_step)


def test_history_and_learning(small):
    run = experiment.fit(linear_task(), small, epochs=3, batch_size=32, progress=False)
    assert run.history["epoch"] == [1, 2, 3]
    assert set(run.history) >= {"train/loss", "train/acc", "test/loss", "test/acc", "epoch_time_s"}
    assert "val/loss" not in run.history  # empty validation split is skipped
    assert run.history["test/loss"][-1] < run.history["test/loss"][0]
    assert run.last["epoch"] == 3


def test_eval_matches_a_direct_computation(small):
    run = experiment.fit(linear_task(), small, epochs=1, batch_size=32, progress=False,
                         eval_batch_size=50)  # fmt: skip
    logits = baselines.mlp_apply(run.state.params, jnp.asarray(small.x_test))
    acc = float(np.mean(np.argmax(logits, -1) == small.y_test))
    assert run.history["test/acc"][-1] == pytest.approx(acc)


def test_chunking_does_not_change_the_result(small):
    a = experiment.fit(noisy_task(), small, epochs=2, batch_size=16, steps_per_call=1, progress=False)
    b = experiment.fit(noisy_task(), small, epochs=2, batch_size=16, steps_per_call=5, progress=False)
    assert float(a.state) == pytest.approx(float(b.state), rel=1e-6)
    c = experiment.fit(noisy_task(), small, epochs=2, batch_size=16, seed=1, progress=False)
    assert float(c.state) != pytest.approx(float(a.state), rel=1e-6)


def test_interrupted_run_resumes_exactly(small, tmp_path):
    cfg = {"lr": 0.1}
    straight = experiment.fit(linear_task(), small, epochs=3, batch_size=32, config=cfg, progress=False)
    experiment.fit(linear_task(), small, epochs=1, batch_size=32, run_dir=tmp_path, config=cfg, progress=False)
    resumed = experiment.fit(linear_task(), small, epochs=3, batch_size=32, run_dir=tmp_path, config=cfg,
                             progress=False)  # fmt: skip
    for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert resumed.history["test/acc"] == pytest.approx(straight.history["test/acc"])


def test_checkpoint_of_another_config_is_refused(small, tmp_path):
    experiment.fit(linear_task(), small, epochs=1, batch_size=32, run_dir=tmp_path, config={"lr": 0.1},
                   progress=False)  # fmt: skip
    with pytest.raises(RuntimeError, match="different configuration"):
        experiment.fit(linear_task(), small, epochs=1, batch_size=32, run_dir=tmp_path, config={"lr": 0.2},
                       progress=False)  # fmt: skip


def test_divergence_is_reported(small):
    def train_step(state, x, y, key):
        return state, {"loss": jnp.where(state > 0, jnp.nan, 0.0)}

    task = experiment.Task(lambda k: jnp.ones(()), train_step, lambda s, x, y: {})
    with pytest.raises(FloatingPointError, match="'loss' became nan at epoch 1, step 0"):
        experiment.fit(task, small, epochs=1, batch_size=32, progress=False, eval_on=())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1, "batch_size": 8}, "epochs must be"),
        ({"epochs": 1, "batch_size": 0}, "batch_size must be"),
        ({"epochs": 1, "batch_size": 10_000}, "exceeds"),
        ({"epochs": 1, "batch_size": 8, "eval_on": ("dev",)}, "eval_on"),
    ],
)
def test_bad_arguments(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        experiment.fit(linear_task(), small, progress=False, **kwargs)


def test_mismatched_split_lengths(small):
    broken = small._replace(y_train=small.y_train[:-1])
    with pytest.raises(ValueError, match="examples but y_train"):
        experiment.fit(linear_task(), broken, epochs=1, batch_size=8, progress=False)
