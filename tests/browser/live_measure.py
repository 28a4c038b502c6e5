#!/usr/bin/env python3
"""Measure the live page in headless Chromium: training throughput and held-out accuracy.

Usage::

    python tests/browser/live_measure.py _build/html [--page book/live.html] [--seconds 60]
        [--out DIR]

Opens the built page (served from localhost), starts SnAP-1 training with its defaults, and
after ``--seconds`` of training prints one JSON line: examples per second (the page's own
figure), examples seen and the held-out accuracy it shows, and then the examples per second of the
library's own batch-32 SnAP-1 step (float32, jit) in the same process. Half-way through it saves full-page
screenshots at 1280 and 390 CSS px, ``live-1280.png`` and ``live-390.png`` in ``--out``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("check_pages", Path(__file__).with_name("check_pages.py"))
check_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pages)


def evaluate(browser, session, expression: str, timeout: float = 120.0):
    res = browser.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                            "returnByValue": True}, session, timeout=timeout)
    if "exceptionDetails" in res:
        raise RuntimeError(res["exceptionDetails"].get("text"))
    return res["result"].get("value")


def screenshot(browser, session, width: int, path: Path) -> None:
    """A full-page PNG ``width`` CSS px wide: the window is made as tall as the page first
    (capturing beyond a short window re-lays the theme's sidebar out mid-capture)."""
    browser.set_width(session, width)
    time.sleep(1.0)
    height = min(evaluate(browser, session, "document.documentElement.scrollHeight"), 6000)
    browser.call("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1,
        "mobile": width < check_pages.PHONE_BELOW}, session)
    time.sleep(1.0)
    png = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    path.write_bytes(base64.b64decode(png["data"]))
    browser.set_width(session, width)


def library_throughput(steps: int) -> float:
    """Examples per second of the library's batch-32 SnAP-1 + Adam step (float32, jit) on the
    first MNIST training digits: the book's own training step, for comparison."""
    import jax
    import optax

    from gridlib import data
    from gridlib.filtergrid import init_params
    from gridlib.filtergrid.experiments import MNIST_PIXEL_SCALE
    from gridlib.filtergrid.snap1 import snap1_batch_grads

    s = data.load_mnist(n_train=32 * (steps + 1), n_test=1)
    x = jax.numpy.asarray(s.x_train.reshape(-1, 28, 28) * (10.0 * MNIST_PIXEL_SCALE))
    y = jax.numpy.asarray(s.y_train)
    params = init_params(jax.random.PRNGKey(0), 28, 10)
    opt = optax.adam(3e-3)

    @jax.jit
    def step(p, st, xb, yb):
        grads = snap1_batch_grads(p, xb, yb)[2]
        updates, st = opt.update(grads, st, p)
        return optax.apply_updates(p, updates), st

    params, state = step(params, opt.init(params), x[:32], y[:32])  # compile
    jax.block_until_ready(params)
    t0 = time.perf_counter()
    for k in range(1, steps + 1):
        params, state = step(params, state, x[32 * k: 32 * k + 32], y[32 * k: 32 * k + 32])
    jax.block_until_ready(params)
    return 32 * steps / (time.perf_counter() - t0)


READ = """(() => { const $ = (id) => document.getElementById(id);
  return {rate: Number($("live-rate").dataset.value || 0), seen: $("live-seen").textContent,
          heldout: Number($("live-heldout").dataset.value || 0)}; })()"""


def main(argv: list[str] | None = None) -> int:
    from gridlib import flags
    from gridlib.cli import OneLineParser

    parser = OneLineParser(prog="live_measure.py", description=__doc__.split("\n")[0])
    parser.add_argument("html", help="the built book's html folder")
    path = flags.Domain(str, pattern=r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*", meaning="a relative path")
    parser.add_flag("--page", path, "book/live.html", help="the live page, relative to html")
    parser.add_flag("--seconds", flags.real(1.0, 3600.0), 60.0, help="seconds of training")
    parser.add_flag("--out", path, "live-shots", help="folder of the screenshots")
    parser.add_flag("--library-steps", flags.integer(1, 10_000), 100,
                    help="batch-32 steps of the library's own SnAP-1 step, timed after the page")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = check_pages.find_chromium()
    if exe is None:
        print("no Chromium", file=sys.stderr)
        return 2
    server, base = check_pages.serve(Path(args.html).resolve())
    browser = check_pages.Chromium(exe, 1280, 900)
    try:
        session = browser.open_tab()
        browser.call("Page.navigate", {"url": base + args.page}, session)
        browser.wait_event("Page.loadEventFired", session, 60, [])
        evaluate(browser, session, """(async () => { while (document.getElementById("live-root")
          .dataset.ready !== "true") await new Promise((r) => setTimeout(r, 100)); })()""")
        evaluate(browser, session, 'document.getElementById("live-run").click()')
        t0 = time.monotonic()
        time.sleep(args.seconds / 2)
        screenshot(browser, session, 1280, out / "live-1280.png")
        screenshot(browser, session, 390, out / "live-390.png")
        browser.set_width(session, 1280)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        result = evaluate(browser, session, READ)
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["browser"] = browser.version
    finally:
        browser.close()
        server.shutdown()
    result["library_examples_per_s"] = library_throughput(args.library_steps)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
