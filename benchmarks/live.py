"""SnAP-1 training in the reader's browser: the live page in headless Chromium, timed in one run
next to the library's batch-32 training step and the original code's.

The page. The live page's files are exported as the book exports them (:func:`gridlib.web.export`:
the shipped 3,000 training and 1,000 held-out MNIST digits) into a temporary folder, with the
page's own elements (:func:`gridlib.web.page_html`), served on localhost and opened in Debian's
Chromium, driven as ``tests/browser/check_pages.py`` drives it. The script presses *Train*
(SnAP-1, Adam, batch 32, the page's default learning rate, in the page's Web Worker, float64)
and after ``--seconds`` presses *Pause*, which evaluates the held-out digits. It reads

- ``browser_examples_per_s``: the figure the page shows the reader (its last second of training);
- ``browser_examples_per_s_overall``: the examples trained over the whole time, per second
  (the page's periodic held-out evaluations included);
- ``heldout_accuracy``: the page's held-out accuracy after that time, on its 1,000 digits.

Half-way through it saves full-page screenshots at 1280 and 390 CSS px into ``runs/live-shots``.

The library and the original. Then, in this process, one batch-32 SnAP-1 + Adam step of the
library (:func:`gridlib.experiment.make_train_step`, jitted, float32, one call per step) and
of the original code (its scripts' jitted step; ``../shared/anchors``, skipped with a message
where absent) are timed on the same ready batches, alternated over ``--rounds`` rounds, best
round each (``benchmarks/filtergrid.py``'s side-by-side runs). The browser runs while the
machine is otherwise idle and the two codes after it, so the ratios compare one machine's
three numbers, not three machines'.

    flock /tmp/gridlib-cpu.lock .venv/bin/python benchmarks/live.py [--seconds 60] [--publish]

Saves ``results/bench/live.json``.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gridlib import cli, flags, results, storage

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_pages", ROOT / "tests" / "browser" / "check_pages.py")
check_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pages)

BATCH = 32


def screenshot(browser, session, width: int, path: Path) -> None:
    """A full-page PNG ``width`` CSS px wide: the window is made as tall as the page first."""
    browser.set_width(session, width)
    time.sleep(1.0)
    height = min(browser.evaluate(session, "document.documentElement.scrollHeight"), 6000)
    browser.call("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1,
        "mobile": width < check_pages.PHONE_BELOW}, session)
    time.sleep(1.0)
    png = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    storage.write_bytes(path, base64.b64decode(png["data"]))
    browser.set_width(session, 1280)


READY = """(async () => { while (document.getElementById("live-root").dataset.ready !== "true")
  await new Promise((r) => setTimeout(r, 100)); })()"""
#: Waits, after *Pause*, for the held-out evaluation of the last trained step.
PAUSED = """(async () => { const $ = (id) => document.getElementById(id);
  while ($("live-heldout").dataset.seen !== $("live-seen").dataset.value)
    await new Promise((r) => setTimeout(r, 100));
  return {rate: Number($("live-rate").dataset.value), seen: Number($("live-seen").dataset.value),
          heldout: Number($("live-heldout").dataset.value), lr: Number($("live-lr").value),
          rule: $("live-rule").value}; })()"""


def in_browser(exe: str, seconds: float, shots: Path) -> dict:
    """Train on the live page for ``seconds``; the page's figures (see the module docstring)."""
    from gridlib import web

    results.runs_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="live-bench-", dir=results.runs_dir()) as tmp:
        site = Path(tmp)
        # in a child: this process has not started JAX's threads when it forks the browser
        subprocess.run([sys.executable, "-c", "import sys; from gridlib import web; "
                        "web.export(sys.argv[1])", str(site / "live")], check=True, cwd=ROOT)
        storage.write_text(site / "page.html", web.page_html())
        server, base = check_pages.serve(site)
        browser = check_pages.Chromium(exe, 1280, 900)
        try:
            session = browser.open_tab()
            browser.call("Page.navigate", {"url": base + "page.html"}, session)
            browser.wait_event("Page.loadEventFired", session, 60, [])
            browser.evaluate(session, READY)
            browser.evaluate(session, 'document.getElementById("live-run").click()')
            t0 = time.monotonic()
            time.sleep(seconds / 2)
            screenshot(browser, session, 1280, shots / "live-1280.png")
            screenshot(browser, session, 390, shots / "live-390.png")
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
            browser.evaluate(session, 'document.getElementById("live-run").click()')
            elapsed = time.monotonic() - t0
            page = browser.evaluate(session, PAUSED)
            version = browser.version
        finally:
            browser.close()
            server.shutdown()
    return {"browser": version, "seconds": elapsed, "rule": page["rule"], "lr": page["lr"],
            "browser_examples_per_s": page["rate"],
            "browser_examples_per_s_overall": page["seen"] / elapsed,
            "examples_seen": page["seen"], "heldout_accuracy": page["heldout"]}


def steps_per_s(rounds: int) -> dict[str, float]:
    """Examples per second of the library's and the original's batch-32 SnAP-1 + Adam step,
    best of ``rounds`` alternated rounds of 32 steps (the original only where its code is here)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from filtergrid import _contestants, _round  # benchmarks/filtergrid.py's side by side

    from gridlib.filtergrid import anchor

    g = anchor.load_anchor() if anchor.available() else None
    if g is None:
        print(f"original: skipped -- {anchor.unavailable_message()}", flush=True)
    fns = anchor.original_functions(g) if g is not None else None
    runs, fresh, _ = _contestants(g, fns, "adam", BATCH, BATCH, BATCH, names=("original", "library"))
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (wall, _cpu) in _round(runs, fresh).items():
            best[name] = min(best.get(name, float("inf")), wall)
    return {name: BATCH / wall for name, wall in best.items()}


def parser() -> cli.OneLineParser:
    """This script's flags, each with its domain."""
    p = cli.OneLineParser(prog="benchmarks/live.py", description=__doc__.split("\n")[0])
    p.add_flag("--seconds", flags.real(5.0, 3600.0), 60.0, help="seconds of in-page training")
    p.add_flag("--rounds", flags.integer(1, 100), 5, help="timing rounds of the two codes' steps")
    p.add_argument("--chromium", default=None, help="the browser (default: Debian's chromium)")
    p.add_argument("--publish", action="store_true",
                   help="add the record to the book's results (its first run)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    exe = check_pages.find_chromium(args.chromium)
    if exe is None:
        raise SystemExit(f"benchmarks/live.py: no Chromium at {args.chromium!r}" if args.chromium
                         else "benchmarks/live.py: no Chromium (make chromium installs Debian's)")
    shots = results.runs_dir() / "live-shots"  # the mid-training screenshots
    page = in_browser(exe, args.seconds, shots)
    print(f"in the page ({page['browser']}): {page['browser_examples_per_s']:.0f} examples/s shown, "
          f"{page['browser_examples_per_s_overall']:.0f} over {page['seconds']:.0f} s with its "
          f"evaluations; held-out accuracy {100 * page['heldout_accuracy']:.2f} % after "
          f"{page['examples_seen']} examples; screenshots in {shots}", flush=True)
    codes = steps_per_s(args.rounds)
    metrics = {**{k: v for k, v in page.items() if k not in ("browser", "rule", "lr")},
               "library_examples_per_s": codes["library"],
               "original_examples_per_s": codes.get("original"),
               "library_over_browser": codes["library"] / page["browser_examples_per_s"],
               "browser_over_original": (page["browser_examples_per_s"] / codes["original"]
                                         if "original" in codes else None)}
    for name, rate in codes.items():
        print(f"{name:8s} batch-32 step: {rate:8.0f} examples/s "
              f"({rate / page['browser_examples_per_s']:.2f} x the page)", flush=True)
    config = {"rule": page["rule"], "optimizer": "adam", "lr": page["lr"], "batch": BATCH,
              "seconds": args.seconds, "rounds": args.rounds, "browser": page["browser"],
              "page_dtype": "float64", "library_dtype": "float32",
              "cpu_count": os.cpu_count(), "machine": platform.machine()}
    print("->", results.save("bench/live", config=config, metrics=metrics,
                             publish=args.publish or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run_script(main))
