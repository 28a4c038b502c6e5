"""The process that takes fingerprints (run by :mod:`gridlib.fingerprint`, never imported).

It runs with *another* source tree's gridlib on ``sys.path`` -- the commit that made a record,
or this one -- and replaces that tree's ``gridlib.experiment.fit`` before its experiments are
imported. Each job's recorded command then runs as it did, up to its first call of ``fit``;
there, instead of training, the first ``gridlib.fingerprint.STEPS`` minibatches run through the task's own
``init`` and ``train_step`` and the process reports what they gave. Only the ``Task`` interface
(``init``, ``train_step``) is used, which every commit since the first results shares, so
the same procedure fingerprints old and new code alike.

Input: one JSON job per stdin line, ``{"name": ..., "command": "python -m gridlib ..."}``.
Output: one line per job on stdout, ``GRIDLIB-FINGERPRINT {json}``.
"""

from __future__ import annotations


def _main() -> None:
    import json
    import os
    import shlex
    import signal
    import sys
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    steps = int(os.environ["GRIDLIB_FINGERPRINT_STEPS"])
    limit = int(os.environ["GRIDLIB_FINGERPRINT_LIMIT_S"])
    cache = os.environ.get("GRIDLIB_FINGERPRINT_CACHE")
    if cache:  # seeds of one configuration compile once
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    class Taken(BaseException):  # not an Exception: no experiment's handler may swallow it
        pass

    class TooLong(BaseException):
        pass

    def canary() -> list[float]:
        """A fixed computation of the kinds the models use (a product, transcendental
        functions, a sequential scan): machines that give other bits here round differently."""
        a = jax.random.normal(jax.random.PRNGKey(0), (64, 96))
        b = jax.random.normal(jax.random.PRNGKey(1), (96, 48))

        def body(c, x):
            c = jnp.sin(c * 1.0001 + x) * 0.9 + jnp.exp(-c * c)
            return c, jnp.tanh(c).sum()

        h = jnp.tanh(a @ b)
        c, s = jax.lax.scan(body, h[:, :8], jnp.ones((20, 64, 8)))
        return [float(jnp.sum(h * h)), float(s.sum()), float(jnp.log1p(jnp.abs(c)).sum())]

    def fingerprint_fit(task, splits, *, epochs, batch_size, seed=0, **_ignored):
        x, y = np.asarray(splits.x_train), np.asarray(splits.y_train)
        init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
        state = task.init(init_key)
        order = np.random.default_rng([seed, 1]).permutation(len(x))
        options = getattr(task, "compiler_options", None)
        step = jax.jit(task.train_step, compiler_options=dict(options) if options else None)
        metrics: dict[str, list[float]] = {}
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            state, m = step(state, jnp.asarray(x[idx]), jnp.asarray(y[idx]),
                            jax.random.fold_in(train_key, i))
            for k, v in jax.device_get(m).items():
                metrics.setdefault(k, []).append(float(np.asarray(v, np.float64).sum()))
        leaves = [np.asarray(v, np.float64).ravel() for v in jax.tree.leaves(jax.device_get(state))]
        flat = np.concatenate(leaves) if leaves else np.zeros(0)
        finite = flat[np.isfinite(flat)]  # e.g. a "best so far" that starts at +inf
        raise Taken({
            "kind": "start", "steps": steps, "batch_size": int(batch_size), "metrics": metrics,
            "state_sum": float(finite.sum()), "state_sumsq": float((finite * finite).sum()),
            "state_size": int(flat.size), "state_nonfinite": int(flat.size - finite.size),
        })

    def too_long(signum, frame):
        raise TooLong()

    import gridlib.experiment

    gridlib.experiment.fit = fingerprint_fit
    from gridlib import cli

    cli.registry()  # experiments bind the replaced fit when their modules are imported
    machine = canary()
    signal.signal(signal.SIGALRM, too_long)
    for line in sys.stdin:
        job = json.loads(line)
        argv = shlex.split(job["command"])[3:]
        out = {"name": job["name"]}
        started = time.perf_counter()
        signal.alarm(limit)
        try:
            status = cli.main(argv)
            out.update(kind="none", why=f"the command ended (exit {status}) without calling fit")
        except Taken as taken:
            out.update(taken.args[0], canary=machine)
        except TooLong:
            out.update(kind="none", why=f"the command did not reach fit within {limit} s")
        finally:
            signal.alarm(0)
        out["seconds"] = round(time.perf_counter() - started, 2)
        print("GRIDLIB-FINGERPRINT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    _main()
