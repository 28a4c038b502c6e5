"""Several devices, one code path: a seed ensemble split over forced CPU devices.

The multi-device checks run once, in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the device count is fixed when JAX
starts, so it cannot be changed inside this process); the subprocess is this file run as a
script, and it writes what it measured to a JSON file that the tests below read. The ensemble
is the GLE MNIST-1D task of ``gle-mnist1d`` at toy size (4 seeds, 3 layers of 7 units, 40 steps
per sample, 100 random training sequences), trained through the real command-line function.
The rest (launcher detection, shares, one-device identity, flag checks) runs in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

N_DEVICES = 4
SEEDS = "1,2,3,4"
RESULT = "gle/mnist1d/e2e15k_seeds1-2-3-4"
ARGV = ["gle-mnist1d", "--seeds", SEEDS, "--epochs", "2", "--n-train", "100", "--n-test", "40",
        "--schedule", "false", "--progress", "false"]  # fmt: skip


# --------------------------------------------------------------------------- the subprocess


def _worker(out: Path) -> None:  # pragma: no cover - runs in the subprocess
    """Train the toy ensemble on 1, 4 and (resumed) 2 devices; write what the tests check."""
    import contextlib
    import io

    import jax
    import optax

    from gridlib import baselines, checkpoint, cli, data, devices, experiment, results
    from gridlib.gle import experiments as gle_exp
    from gridlib.gle import mnist1d as m1d

    assert jax.local_device_count() == N_DEVICES, jax.devices()
    tiny = m1d.Setup(n_fast=3, n_slow=4, n_hidden=1, seq_len=40, batch=20)
    m1d.setup_for = lambda arch, **kw: tiny._replace(**kw)  # toy network, same code path
    rng = np.random.default_rng(0)
    fake = data.make_splits(rng.normal(size=(100, 40)).astype(np.float32), rng.integers(0, 10, 100),
                            rng.normal(size=(40, 40)).astype(np.float32), rng.integers(0, 10, 40))  # fmt: skip
    data.load_mnist1d = lambda **kw: fake  # hermetic: no data cache needed

    # For every fit: how many devices hold each state leaf when its first jitted chunk runs.
    placed: list[list[int]] = []
    real_chunk = experiment.make_epoch_chunk

    def spying_chunk(step, *options):
        chunk, first = real_chunk(step, *options), []

        def call(state, *args):
            if not first:
                first.append(True)
                placed.append(sorted({len(x.sharding.device_set) for x in jax.tree.leaves(state)}))
            return chunk(state, *args)

        return call

    experiment.make_epoch_chunk = spying_chunk

    def direct(n_devices):
        with results.session(devices=n_devices, fresh=True):
            run = gle_exp.mnist1d(seeds=SEEDS, epochs=2, n_train=100, n_test=40, schedule=False,
                                  progress=False, save=False)["run"]  # fmt: skip
        return run

    one, four = direct(1), direct(N_DEVICES)
    leaf = four.state.seeds.net[1].W  # (seeds, out, in)
    shards = sorted(leaf.addressable_shards, key=lambda s: s.index[0].start or 0)
    report = {
        "history_1": one.history,
        "history_4": four.history,
        "W_1": np.asarray(one.state.seeds.net[1].W).tolist(),
        "W_4": np.asarray(leaf).tolist(),
        "spec_4": list(leaf.sharding.spec),
        "shard_devices": [s.device.id for s in shards],
        "shard_rows": [np.asarray(s.data).tolist() for s in shards],
        "count_replicated": bool(four.state.count.sharding.is_fully_replicated),
        "single_device_sets": sorted({len(x.sharding.device_set) for x in jax.tree.leaves(one.state)}),
    }

    # Stop after one epoch on 4 devices, resume on 2 through the command line.
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        report["rc_stop"] = cli.main([*ARGV, "--devices", "4", "--fresh", "--stop-after-epochs", "1"])
        ckpt_file = results.runs_dir() / RESULT / experiment.CHECKPOINT_FILE
        report["saved_epoch"] = checkpoint.read_meta(ckpt_file, lambda meta: [])["epoch"]
        with np.load(ckpt_file, allow_pickle=False) as z:  # host arrays, never device arrays
            report["saved_types"] = sorted({type(z[k]).__name__ for k in z.files})
        report["rc_resume"] = cli.main([*ARGV, "--devices", "2"])
    report["placed_on_resume"] = placed[-1]
    record = results.load_scratch(RESULT)
    report["history_resumed"] = record["history"]
    report["devices_recorded"] = record["extra"]["devices"]

    # Refusals: one line on stderr, exit code 2, nothing trained.
    for key, argv in {"indivisible": ["gle-mnist1d", "--seeds", "1,2,3", "--devices", "2"],
                      "too_many": ["gle-mnist1d", "--devices", "8"]}.items():  # fmt: skip
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            report[f"rc_{key}"] = cli.main(argv)
        report[f"err_{key}"] = err.getvalue()
    report["default_6_seeds"] = devices.ensemble_devices(6)
    report["default_8_seeds"] = devices.ensemble_devices(8)

    # One model, each minibatch split over the devices (and in parts on each): an MLP, and
    # NeuralGrid, whose layer has a custom VJP.
    from gridlib.neuralgrid import experiments as ngx

    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(256, 10)).astype(np.float32), rng.integers(0, 3, 256)
    small = data.make_splits(xs, ys, xs[:32], ys[:32])
    mesh = devices.local_mesh(N_DEVICES)
    fit = dict(epochs=1, batch_size=32, progress=False, eval_on=())
    from gridlib.filtergrid import experiments as fgx

    both = (("split", {"mesh": mesh}), ("split_parts", {"mesh": mesh, "microbatches": 2}))
    tasks = {"mlp": (lambda **split: baselines.mlp_task((10, 16, 3), optax.sgd(0.1), **split), both),
             "neuralgrid": (lambda **split: ngx.make_task(ngx.Config(height=6, width=5, batch_size=32),
                                                          8, n_in=10, n_classes=3, **split), both),
             # SnAP-1 on a 5 x 3 grid reading 2 rows of 5 pixels (T = 2); SGD, whose step, unlike
             # Adam's, shows a gradient off by a constant factor
             "filtergrid": (lambda **split: fgx.make_task(n_rows=5, n_cols=3, n_inputs=5, optimizer="sgd",
                                                        **split),
                            both[:1])}  # fmt: skip
    for model, (make, splits) in tasks.items():
        ref = experiment.fit(make(), small, **fit)
        for label, split in splits:
            run = experiment.fit(make(**split), small, **fit)
            report[f"{model}_{label}_max_diff"] = max(
                float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree.leaves(ref.state), jax.tree.leaves(run.state), strict=True))
            report[f"{model}_{label}_history_diff"] = max(
                abs(a - b) for k in ("train/loss", "train/acc")
                for a, b in zip(ref.history[k], run.history[k], strict=True))
        # the split is real: the compiled step sums the gradients across the devices
        step = jax.jit(make(**split).train_step)
        state = make().init(jax.random.PRNGKey(0))
        hlo = step.lower(state, xs[:32], ys[:32], jax.random.PRNGKey(0)).compile().as_text()
        report[f"{model}_all_reduce"] = "all-reduce" in hlo
        # the split task starts where its steps leave the state, so a jitted step compiles once
        split_task = make(**split)
        state = split_task.init(jax.random.PRNGKey(0))
        for _ in range(3):
            state, _ = step(state, xs[:32], ys[:32], jax.random.PRNGKey(0))
        report[f"{model}_compiles"] = step._cache_size()
    report["cpu_mesh_size"] = devices.cpu_mesh(N_DEVICES).size  # JAX started with the flag
    out.write_text(json.dumps(results.to_jsonable(report)))


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    """Run :func:`_worker` once with four forced CPU devices; its report."""
    tmp = tmp_path_factory.mktemp("devices")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={N_DEVICES}"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu", "GRIDLIB_SCALE": "ci",
           "GRIDLIB_DISTRIBUTED": "0", "GRIDLIB_RUNS": str(tmp / "runs"),
           "GRIDLIB_RESULTS": str(tmp / "results")}  # fmt: skip
    out = tmp / "report.json"
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _assert_same_history(a: dict, b: dict) -> None:
    for key in ("train/loss", "train/acc", "test/loss", "test/acc"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=2e-5, atol=1e-6,
                                   err_msg=key)  # fmt: skip


# --------------------------------------------------------------------------- several devices


def test_sharded_ensemble_gives_the_same_per_seed_numbers(measured):
    """Catches seeds reordered, dropped or mixed when split and gathered: every per-seed curve
    and every seed's weights must match the one-device run."""
    assert np.asarray(measured["history_4"]["test/acc"]).shape == (2, 4)
    _assert_same_history(measured["history_1"], measured["history_4"])
    np.testing.assert_allclose(measured["W_4"], measured["W_1"], atol=1e-5)


def test_each_device_holds_its_share_of_the_seeds(measured):
    """Catches a state copied to every device (or left on one) instead of split: four shards
    on four devices, shard i holding seed i only; the step counter copied."""
    assert measured["spec_4"] == ["devices"]
    assert measured["shard_devices"] == [0, 1, 2, 3]
    for i, rows in enumerate(measured["shard_rows"]):
        np.testing.assert_array_equal(np.asarray(rows), np.asarray(measured["W_4"])[i : i + 1])
    assert measured["count_replicated"]
    assert measured["single_device_sets"] == [1]  # --devices 1: nothing was placed


def test_checkpoint_and_resume_when_sharded(measured):
    """Stop after epoch 1 on 4 devices, resume on 2 through the command line. Catches a
    checkpoint of device arrays instead of host arrays, a resume left on one device (no re-split
    on load), and a resumed run that differs from the uninterrupted one."""
    assert measured["rc_stop"] == 0 and measured["rc_resume"] == 0
    assert measured["saved_epoch"] == 1
    assert set(measured["saved_types"]) <= {"ndarray", "int", "float"}
    assert measured["placed_on_resume"] == [2]
    assert measured["devices_recorded"] == 2
    _assert_same_history(measured["history_4"], measured["history_resumed"])


def test_device_counts_that_do_not_fit_are_one_line_errors(measured):
    for key, text in (("indivisible", "--devices 2 does not divide the 3 seeds"),
                      ("too_many", "--devices 8: this process has 4 device(s)")):  # fmt: skip
        err = measured[f"err_{key}"].strip()
        assert measured[f"rc_{key}"] == 2 and text in err and len(err.splitlines()) == 1, err
    # No --devices: every device, or the most that divide the seeds.
    assert measured["default_6_seeds"] == 3 and measured["default_8_seeds"] == 4


@pytest.mark.parametrize("model", ["mlp", "neuralgrid", "filtergrid"])
def test_split_minibatches_match_one_device(measured, model):
    """One model, each minibatch split over 4 devices (and, for the backprop tasks, in 2 parts
    on each): the weights and the per-epoch loss and accuracy equal the whole-batch run's up to
    summation order, and the compiled step does sum across the devices."""
    for label in ("split", "split_parts") if model != "filtergrid" else ("split",):
        assert measured[f"{model}_{label}_max_diff"] < 1e-5, label
        assert measured[f"{model}_{label}_history_diff"] < 1e-5, label
    assert measured[f"{model}_all_reduce"]
    assert measured[f"{model}_compiles"] == 1  # not once more for the state's new placement
    assert measured["cpu_mesh_size"] == 4


# --------------------------------------------------------------------------- this process


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "n1"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}, None),  # the batch script, outside srun
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_STEP_NODELIST": "n[1-2]"}, "slurm"),
        ({"OMPI_COMM_WORLD_SIZE": "1"}, None),
        ({"OMPI_COMM_WORLD_SIZE": "4"}, "openmpi"),
        ({"OMPI_COMM_WORLD_SIZE": "4", "GRIDLIB_DISTRIBUTED": "0"}, None),
        ({"GRIDLIB_DISTRIBUTED": "1"}, "explicit"),
    ],
)
def test_the_launcher_decides_whether_processes_join(env, expected):
    from gridlib import devices

    assert devices.launcher(env) == expected
    if expected is None:
        assert devices.initialize_distributed(env) is False


def test_a_bad_distributed_flag_is_refused():
    from gridlib import devices

    with pytest.raises(ValueError, match="use 1"):
        devices.launcher({"GRIDLIB_DISTRIBUTED": "yes please"})


@pytest.mark.parametrize(("n_items", "n_processes"), [(10, 1), (10, 3), (10, 4), (4, 4)])
def test_process_shares_cover_the_seeds_once_in_order(n_items, n_processes):
    from gridlib import devices

    items = tuple(range(100, 100 + n_items))
    shares = [devices._share(items, n_processes, i) for i in range(n_processes)]
    assert sum(shares, ()) == items
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="at least one seed per process"):
        devices._share(items[:2], 3, 0)


def test_one_device_changes_nothing():
    import jax

    from gridlib import devices
    from gridlib.experiment import Task

    if jax.local_device_count() != 1:
        pytest.skip("this process has several devices")
    task = Task(init=lambda key: {"w": key}, train_step=lambda *a: a, eval_step=lambda *a: a)
    mesh = devices.local_mesh()
    assert mesh.size == 1 and devices.ensemble_devices(10) == 1
    assert devices.shard_ensemble_task(task, mesh, 2) is task
    assert devices.split_batch(len, mesh) is len
    with pytest.raises(RuntimeError, match="JAX started with 1: call gridlib.devices.cpu_mesh"):
        devices.cpu_mesh(2)  # too late: this process's JAX has started with one device
    assert devices.process_share((1, 2, 3)) == (1, 2, 3)


def test_the_devices_flag_is_checked_and_only_where_it_applies(tmp_results, capsys):
    from gridlib import cli

    cli.registry()
    args, options = cli.parse("gle-mnist1d", ["--devices", "1"])
    assert options == {"devices": 1}
    with pytest.raises(ValueError, match=r"--devices '0': expected an integer in \[1, "):
        cli.parse("gle-mnist1d", ["--devices", "0"])
    with pytest.raises(ValueError, match=r"--devices 4096: this process has \d+ device"):
        cli.parse("gle-mnist1d", ["--devices", "4096"])
    # experiments without an ensemble have no --devices
    with pytest.raises(ValueError, match="unrecognized arguments: --devices"):
        cli.parse("mlp", ["--devices", "2"])


if __name__ == "__main__":  # pragma: no cover - the subprocess of ``measured``
    _worker(Path(sys.argv[1]))


def test_a_split_that_cannot_be_made_is_refused():
    """Online SnAP-1 updating inside each sequence cannot split a minibatch over devices, and a
    minibatch that the devices do not divide is refused; each error says why."""
    from types import SimpleNamespace

    from gridlib import devices
    from gridlib.filtergrid import experiments as fgx

    with pytest.raises(ValueError, match="cannot split a minibatch over devices"):
        fgx.make_task(rule="online_snap1", loss_mode="per_t", update_every_step=True,
                      mesh=devices.local_mesh())  # fmt: skip
    with pytest.raises(ValueError, match="2 devices do not divide the 3 examples"):
        devices._check_divides(3, SimpleNamespace(size=2), "examples")
