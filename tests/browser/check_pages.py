#!/usr/bin/env python3
"""Browser check of every HTML page of a built book: fails on defects a reader would see.

Usage::

    python tests/browser/check_pages.py _build/ci/_build/html [PAGE ...] [--out DIR] [--require-browser]

How. The book is served from a localhost HTTP server (a thread of this process) and every page is
opened in headless Chromium (Debian's ``chromium``), driven over the Chrome DevTools Protocol on
``--remote-debugging-pipe``: no port, no websocket, no Python package beyond the standard library,
and no browser download. ``--jobs`` pages (2 by default) are checked at once, each in its own
window of one browser, at every width of ``--widths``: 1280 CSS px (the main width) and 390 px (a
phone, laid out with a mobile viewport), 900 px high. After the load event, the images and
fonts, and MathJax 3's typesetting (``MathJax.startup.promise``), the script ``PAGE_CHECK`` below
reports at the main width

* ``math-error``      a MathJax error (``mjx-merror`` / ``data-mjx-error``), with its TeX source;
* ``math-untypeset``  a ``.math`` element holding no ``mjx-container``, raw ``$...$``, ``\\(``,
  ``\\[`` or ``\\begin{`` left in a text node outside code, or MathJax never finishing;
* ``math-too-wide``   display math wider than the box it got (beside its equation number) or than
  the content column: it is cut off or scrolls sideways, and the right end -- where the
  equation number and the last terms are -- is out of sight. Always a defect, also in outputs
  and at a phone's width (up to 4 px of overhang there): break it at its relations or terms;
* ``output-too-wide`` a cell output wider than the content column (see *widths* below);
* ``page-too-wide``   the page itself scrolls sideways;
* ``code-too-wide``   a visible code input (``div.cell_input pre``) wider than its box: its
  ``scrollWidth`` exceeds its ``clientWidth`` (the reader would scroll code sideways), with its
  longest line;
* ``table-too-wide``  a table (in prose or an output) wider than the column that does not scroll
  inside a box of its own within the column: cut off (columns hidden) or running out of it;
* ``broken-image``    an ``<img>`` that did not load (``naturalWidth == 0``);
* ``http-error``      a same-origin request of the page that failed or answered >= 400
  (``favicon.ico`` aside), or a redirect page whose target is missing;
* ``output-error``    stderr / traceback / error output blocks; ``Traceback (most recent call
  last)`` in any output; in plain-text outputs also lines starting ``SomeError``/``Error:``,
  ``SomeWarning:``, ``file.py:12: UserWarning``, ``FAILED``/``ERROR`` and pytest's
  ``N failed ... in 0.1s`` summary (prose words such as "error rate" are not matched);
* ``raw-markdown``    Markdown shown literally in output text: ``**bold**``, a backtick pair,
  a ``|---|---|`` table rule, ``[text](url)``, ``$math$``, ``{role}`...```; and, in rendered
  Markdown/HTML outputs, a ``--flag`` that Markdown typography turned into a dash. Plain-text
  and stream outputs are checked whole; in rendered outputs text inside ``<code>``/``<pre>`` is
  exempt;
* ``output-garbled``  pytest output (``ipytest``) that arrived in pieces: progress dots one per
  line, or the ``[100%]`` marker alone on a padded line;
* ``build-message``   a docutils system message or ``problematic`` node left in the page;
* ``script-twice``    read from the page's HTML, not the browser: a name declared at the top
  level (``const``/``let``/``class``) by two classic inline ``<script>`` blocks, or twice in
  one (the second is a ``SyntaxError`` and none of its script runs), or one ``<script src>``
  loaded twice (query strings such as ``?v=...`` aside);
* ``faint-text``      text in the content column (code, math, forms and navigation aside) with
  a contrast below 4.5:1 against what is behind it (WCAG AA), or a font weight below 400 (the
  theme sets figure captions at 300);
* ``small-figure``    an output figure shown below 10/13.75 of its natural width: drawn at 110
  dpi, its 9-pt labels would be under 10 px (on a phone, ``_static/figures.js`` keeps figures at
  three quarters of their width, scrolling inside their own box);
* ``check-failed``    the page could not be checked (time-out, script error).

At the other widths (the phone) only what depends on the width is checked: ``page-too-wide``,
``table-too-wide``, ``output-too-wide``, ``math-too-wide``, ``code-too-wide`` and
``small-figure``, where wide code, text outputs, figures and tables may scroll sideways inside their own box however wide they are
(noted, not failed) but must not be cut off or run out of the column, while display math must
fit the room it gets as at the main width (``math-too-wide``, up to 4 px of overhang); and the
page's requests (``http-error``). ``--narrow-pages`` limits those widths to a few pages.

Uncaught JavaScript exceptions (``js-error``), outputs accepted as scrolling, redirects and
external requests are *notes*: written to the report, not failures (``--fail-on-js-errors``
counts the exceptions).

Widths. The content column is ``article.bd-article`` (sphinx-book-theme), its content box. Display
math, images, HTML and rendered Markdown outputs must fit in it, and so must plain-text/stream
outputs (``<pre>``) at the main width: a printed line that scrolls sideways hides its end, often
the verdict. Tables are put by the theme in a box that scrolls sideways; they may be wider than
the column up to ``--scroll-tolerance`` (2) column widths -- a few more columns of a results
table -- and are then listed as notes. Wider than that (most of it out of sight), or
overflowing without such a scroll box, fails.

Output. One line per defect, ``page: kind: detail`` (``page at 390px: kind: detail`` at another
width than the main one; detail ends with the section or equation anchor), then a summary
line. A full-page screenshot of every page goes to ``<out>/<page>.png`` (``<out>/<page>-390px.png``
at 390 px); ``<out>`` (default ``<html dir>/../browser-check``) also receives
``report.txt`` (defects, then notes), ``report.json`` (per page and width: defects, notes, stats,
time)
and ``chromium.log``. Exit status 1 on defects, 0 when clean, 2 when the check could not run.
Without a usable Chromium the check is skipped (exit 0, with a message), unless
``--require-browser`` is given or the environment variable ``CI`` is set (not 0/false/no): then
it fails (exit 2).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("browser_replies", Path(__file__).with_name("replies.py"))
replies = importlib.util.module_from_spec(_spec)  # the command/reply bookkeeping of both drivers
_spec.loader.exec_module(replies)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    # several pages are checked at once, each in its own window: none may be throttled as hidden
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--remote-debugging-pipe",
)
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static"}
PAGE_TIMEOUT_S = 60.0
WIDTHS = (1280, 390)  # a laptop and a phone (CSS px); the first is the main width
PHONE_BELOW = 700  # narrower windows are laid out as a phone's (mobile viewport)


class BrowserUnavailable(RuntimeError):
    """No Chromium could be started."""


# ---- the Chrome DevTools Protocol over a pipe ------------------------------------------------


class Chromium:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, executable: str, width: int, height: int, log_path: Path | None = None):
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="browser-check-profile-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def wire_pipes() -> None:  # runs in the child: the protocol expects fds 3 and 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        args = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log, preexec_fn=wire_pipes, close_fds=False)
        except OSError as exc:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise BrowserUnavailable(f"cannot start {executable}: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.out, self.inp = to_child_w, from_child_r
        self.closed = False
        self.replies = replies.Replies()
        self.sessions: dict[str, queue.Queue] = {}
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.version = self.call("Browser.getVersion", timeout=30)["product"]
        except Exception as exc:
            self.close()
            raise BrowserUnavailable(f"{executable} did not answer on the debugging pipe: {exc}") from exc

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.inp, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                for q in list(self.sessions.values()):
                    q.put(None)
                self.replies.fail_all({"error": {"message": "browser closed the pipe"}})
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    self.replies.deliver(msg["id"], msg)
                elif (q := self.sessions.get(msg.get("sessionId", ""))) is not None:
                    q.put(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT_S) -> dict:
        def send(msg_id: int) -> None:
            if self.closed:
                raise BrowserUnavailable(f"{method}: the browser has gone")
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            data = json.dumps(msg).encode() + b"\0"
            try:
                while data:
                    data = data[os.write(self.out, data):]
            except OSError as exc:
                raise BrowserUnavailable(f"{method}: browser pipe closed ({exc})") from exc

        reply = self.replies.request(method, send, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def evaluate(self, session: str, expression: str, timeout: float = PAGE_TIMEOUT_S):
        """The value of the JavaScript ``expression`` in the tab (a promise is awaited).

        Raises:
            RuntimeError: with the page's exception, where the expression threw.
        """
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                             "returnByValue": True}, session, timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text"))
        return res["result"].get("value")

    def open_tab(self) -> str:
        """A new tab, with a session that receives Page, Runtime and Network events (at the
        browser's width; :meth:`set_width` changes it)."""
        target = self.call("Target.createTarget", {"url": "about:blank", "newWindow": True})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.sessions[session] = queue.Queue()
        for method in ("Page.enable", "Runtime.enable", "Network.enable"):
            self.call(method, {}, session)
        self.set_width(session, self.width)
        return session

    def set_width(self, session: str, width: int) -> None:
        """Lay the tab's pages out ``width`` CSS px wide; below ``PHONE_BELOW`` px as a phone
        (mobile viewport: the page's ``<meta name="viewport">`` applies)."""
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": self.height, "deviceScaleFactor": 1,
            "mobile": width < PHONE_BELOW}, session)

    def wait_event(self, method: str, session: str, timeout: float, keep: list) -> dict:
        """Wait for event ``method`` of ``session``; the session's other events go to ``keep``."""
        deadline = time.monotonic() + timeout
        q = self.sessions[session]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} within {timeout:.0f} s")
            try:
                ev = q.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                raise BrowserUnavailable("the browser has gone")
            if ev["method"] == method:
                return ev
            keep.append(ev)

    def drain_events(self, session: str, keep: list) -> None:
        q = self.sessions[session]
        while True:
            try:
                ev = q.get_nowait()
            except queue.Empty:
                return
            if ev is not None:
                keep.append(ev)

    def close(self) -> None:
        try:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.out, self.inp):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def find_chromium(explicit: str | None = None) -> str | None:
    """The browser's path: ``explicit`` (a ``--chromium`` flag) and nothing else where given, so
    that a mistyped path is reported, not replaced by another browser; else ``$CHROMIUM``, else
    the usual names on ``PATH``; ``None`` where none is found."""
    if explicit:
        return shutil.which(explicit)
    for name in [os.environ.get("CHROMIUM", "")] + list(CHROMIUM_CANDIDATES):
        if not name:
            continue
        path = shutil.which(name)
        if path:
            return path
    return None


# ---- serving the book ------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ---- what is checked in the page -------------------------------------------------------------

# An async function of (scrollTolerance, mathjaxTimeoutMs, narrow); returns {defects, notes,
# stats}. ``narrow``: a second, phone-sized pass, which checks only what depends on the width.
PAGE_CHECK = r"""
async (scrollTolerance, mathjaxTimeoutMs, narrow) => {
  const defects = [], notes = [];
  const add = (kind, detail) => defects.push({kind, detail: String(detail)});
  const note = (kind, detail) => notes.push({kind, detail: String(detail)});
  const clip = (s, n = 120) => { s = String(s).replace(/\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const withTimeout = (p, ms) => Promise.race([p.then(() => true), sleep(ms).then(() => false)]);

  // 1. let everything settle: lazy images, fonts, MathJax.
  for (const img of document.images) { if (img.loading === 'lazy') img.loading = 'eager'; }
  await withTimeout(Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); }))), 15000);
  if (document.fonts) await withTimeout(document.fonts.ready, 5000);
  const hasMathElements = document.querySelector('.math, mjx-container') !== null;
  let mjReady = false;
  const t0 = performance.now();
  while (performance.now() - t0 < mathjaxTimeoutMs) {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      mjReady = await withTimeout(MathJax.startup.promise, mathjaxTimeoutMs);
      break;
    }
    if (document.readyState === 'complete' && !hasMathElements) break;
    await sleep(50);
  }
  if (hasMathElements && !mjReady) add('math-untypeset', 'MathJax did not finish typesetting (not loaded or timed out)');
  await sleep(50);  // let layout settle (no requestAnimationFrame: it does not run in hidden windows)

  const describe = el => {
    const sec = el.closest('section[id]');
    return sec ? '#' + sec.id : '';
  };

  // 2. MathJax errors, with the TeX source where MathJax still knows it.
  const errorNodes = narrow ? [] : [...document.querySelectorAll('mjx-merror, [data-mjx-error], [data-mml-node="merror"]')];
  const seenContainers = new Set();
  const texOf = new Map();
  try {
    for (const item of MathJax.startup.document.math) {
      if (item.typesetRoot) texOf.set(item.typesetRoot, item.math);
    }
  } catch (e) { /* no MathJax document */ }
  for (const node of errorNodes) {
    const box = node.closest('mjx-container') || node;
    if (seenContainers.has(box)) continue;
    seenContainers.add(box);
    const msg = node.getAttribute('data-mjx-error') || node.getAttribute('title') ||
                (box.querySelector('[data-mjx-error]') || {getAttribute: () => ''}).getAttribute('data-mjx-error') ||
                clip(node.textContent, 80);
    const tex = texOf.get(box);
    add('math-error', `${clip(msg, 90)}${tex ? ' in $' + clip(tex, 100) + '$' : ''} ${describe(box)}`.trim());
  }

  // 3. untypeset math: .math elements without output, raw TeX in text nodes.
  for (const el of (narrow ? [] : document.querySelectorAll('span.math, div.math'))) {
    if (!el.querySelector('mjx-container') && !el.closest('mjx-container'))
      add('math-untypeset', `${el.tagName.toLowerCase()}.math not typeset: ${clip(el.textContent, 100)} ${describe(el)}`.trim());
  }
  const SKIP_TAGS = new Set(['SCRIPT', 'STYLE', 'CODE', 'PRE', 'TEXTAREA', 'KBD', 'SAMP', 'NOSCRIPT',
                             'MJX-CONTAINER', 'SVG', 'TEMPLATE']);
  const skipped = el => { for (let e = el; e; e = e.parentElement) {
      if (SKIP_TAGS.has(e.tagName.toUpperCase()) || (e.classList && (e.classList.contains('highlight') ||
          e.classList.contains('math') || e.classList.contains('tex2jax_ignore') || e.classList.contains('mathjax_ignore'))))
        return true; }
    return false; };
  const RAW_MATH = [
    [/(^|[^\\$\w])\$(?=[^\s$])[^$\n]{0,200}[^\s$\\]\$(?![\d$])/, '$...$'],
    [/(^|[^$])\$\$[^$]+\$\$/, '$$...$$'],
    [/\\\(|\\\)/, '\\(...\\)'],
    [/\\\[|\\\]/, '\\[...\\]'],
    [/\\begin\{/, '\\begin{...}'],
  ];
  const root = document.querySelector('article.bd-article') || document.querySelector('[role="main"]') || document.body;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawHits = new Map();
  for (let n = narrow ? null : walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.nodeValue;
    if (!/[$\\]/.test(text) || skipped(n.parentElement)) continue;
    // join with the neighbouring text of the same block so that $x$ split by markup is still seen
    const block = n.parentElement.closest('p, li, td, th, dd, dt, h1, h2, h3, h4, h5, h6, div, caption, figcaption') || n.parentElement;
    for (const [re, what] of RAW_MATH) {
      const m = text.match(re);
      if (m) { const key = block; if (!rawHits.has(key)) rawHits.set(key, `raw ${what} in text: ${clip(text.slice(Math.max(0, m.index - 20)), 80)}`); }
    }
  }
  for (const [block, detail] of rawHits) add('math-untypeset', `${detail} ${describe(block)}`.trim());

  // 4. widths.
  const cs = el => getComputedStyle(el);
  const colRect = root.getBoundingClientRect();
  const colStyle = cs(root);
  const colLeft = colRect.left + parseFloat(colStyle.paddingLeft) + parseFloat(colStyle.borderLeftWidth);
  const colRight = colRect.right - parseFloat(colStyle.paddingRight) - parseFloat(colStyle.borderRightWidth);
  const colWidth = Math.max(1, colRight - colLeft);
  const SLACK = 2;
  const MATH_PHONE_SLACK = 4;  // px a display equation may overrun its box on a phone (glyph overhang)
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && cs(el).visibility !== 'hidden'; };
  // the widest extent of el's content: its own scroll width, and the right edge (or scrolled
  // extent) of the descendants that carry wide content
  const contentRight = el => {
    let right = el.getBoundingClientRect().left + el.scrollWidth;
    for (const d of el.querySelectorAll('svg, img, table, pre, mjx-container, canvas, video, iframe')) {
      const r = d.getBoundingClientRect();
      if (r.width > 0) right = Math.max(right, r.right, d.scrollWidth ? r.left + d.scrollWidth : 0);
    }
    return right;
  };
  // the innermost ancestor (up to the column) that clips or scrolls sideways
  const clipper = el => {
    for (let e = el; e && e !== root.parentElement; e = e.parentElement) {
      const ox = cs(e).overflowX;
      if (ox !== 'visible' && e.scrollWidth > e.clientWidth + SLACK) return {el: e, overflow: ox};
    }
    return null;
  };
  const px = v => Math.round(v) + 'px';

  // display math: the rendered equation must fit in the box MathJax got (beside the equation
  // number, when Sphinx puts one), and that box in the column, with nothing clipped or scrolled.
  const displayMath = new Set();
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) displayMath.add(c.closest('div.math') || c);
  const mathInOutputs = new Set();
  for (const m of displayMath) {
    if (!visible(m)) continue;
    const c = m.matches('mjx-container') ? m : m.querySelector('mjx-container');
    if (!c) continue;
    const svg = c.querySelector(':scope > svg') || c.querySelector('svg');
    let needed = svg ? svg.getBoundingClientRect().width : c.scrollWidth;
    if (svg && svg.style.minWidth) {  // MathJax-tagged equations: width 100%, min-width = natural width
      const minW = parseFloat(svg.style.minWidth) || 0;
      needed = Math.max(needed, svg.style.minWidth.endsWith('ex') ? minW * parseFloat(cs(c).fontSize) / 2 : minW);
    }
    needed = Math.max(needed, c.scrollWidth);
    const box = c.clientWidth || c.getBoundingClientRect().width;
    const right = Math.max(m.getBoundingClientRect().right, c.getBoundingClientRect().left + needed);
    const cl = clipper(svg || c);
    if (needed <= box + SLACK && right <= colRight + SLACK && !cl) continue;
    const output = m.closest('.cell_output');
    if (output) mathInOutputs.add(output);
    const eqno = m.querySelector('.eqno');
    const tex = texOf.get(c);
    const how = cl ? (cl.overflow === 'hidden' || cl.overflow === 'clip' ? 'cut off' : 'scrolls sideways')
                   : (right > colRight + SLACK ? 'runs out of the column' : 'overflows');
    const where = (m.id ? '#' + m.id : describe(m)) + (output ? ' (cell output)' : '');
    // on a phone, too, an equation must fit the room it gets (beside its number): one that
    // scrolls sideways hides its right end, so it is broken at its relations or terms
    // (``aligned``) instead. Only a few px of overhang (MATH_PHONE_SLACK) are let through.
    const phoneOverhang = narrow && how === 'scrolls sideways' && cl.el.getBoundingClientRect().right <= colRight + SLACK
                          && needed <= box + MATH_PHONE_SLACK && right <= colRight + MATH_PHONE_SLACK;
    if (phoneOverhang) continue;
    add('math-too-wide', `${eqno ? 'equation ' + clip(eqno.textContent.replace('#', ''), 12) + ' ' : ''}` +
        `${px(needed)} wide, ${px(Math.min(box, colWidth))} available in a ${px(colWidth)} column, ${how}` +
        `${tex ? ': $' + clip(tex, 70) + '$' : ''} ${where}`.trim());
  }

  // tables (in prose and in outputs) wider than the column must scroll inside their own box:
  // cut off, they hide columns; running out of the column, they widen the page.
  const scrollsIn = cl => cl && (cl.overflow === 'auto' || cl.overflow === 'scroll') &&
                          cl.el.getBoundingClientRect().right <= colRight + SLACK;
  const badTables = new Set();
  for (const t of root.querySelectorAll('table')) {
    if (!visible(t) || t.parentElement.closest('table')) continue;
    const r = t.getBoundingClientRect();
    const width = Math.max(r.width, t.scrollWidth);
    if (r.left + width <= colRight + SLACK) continue;
    const cl = clipper(t);
    if (scrollsIn(cl)) continue;
    badTables.add(t);
    const tag = cl ? '<' + cl.el.tagName.toLowerCase() + '>' : '';
    const how = !cl ? 'runs out of the column'
              : (cl.overflow === 'auto' || cl.overflow === 'scroll') ? `scrolls inside ${tag}, which leaves the column`
              : `cut off by ${tag} (columns hidden)`;
    const head = [...t.querySelectorAll('th')].slice(0, 4).map(th => clip(th.textContent, 20)).join(' | ');
    add('table-too-wide', `table ${px(width)} wide in a ${px(colWidth)} column, ${how}: ${head || clip(t.textContent, 60)} ${describe(t)}`.trim());
  }

  // code input must fit its box. At the main width a reader never scrolls code sideways (the
  // house style keeps lines within 79 columns); on a phone it may scroll inside its own box,
  // but must not be cut off or run out of the column.
  for (const pre of document.querySelectorAll('div.cell_input pre')) {
    if (!visible(pre)) continue;
    const r = pre.getBoundingClientRect();
    const over = pre.scrollWidth > pre.clientWidth + SLACK;
    const outside = r.right > colRight + SLACK;
    if (!over && !outside) continue;
    const ox = cs(pre).overflowX;
    const scrolls = ox === 'auto' || ox === 'scroll';
    if (narrow && scrolls && !outside) continue;
    const longest = (pre.textContent || '').split('\n').reduce((a, b) => (b.length > a.length ? b : a), '');
    const how = outside ? 'runs out of the column' : (scrolls ? 'scrolls sideways' : 'cut off');
    add('code-too-wide', `code input ${px(pre.scrollWidth)} wide in a ${px(pre.clientWidth)} box, ${how}; ` +
        `longest line ${longest.length} columns: ${clip(longest, 60)} ${describe(pre)}`.trim());
  }

  const outputs = [...document.querySelectorAll('.cell_output > *')];
  const kindOf = o => {
    const c = o.classList;
    if (c.contains('stream') || c.contains('text_plain') || c.contains('stderr') || c.contains('traceback') || c.contains('error')) return 'text';
    if (o.matches('table, .pst-scrollable-table-container') || (o.querySelector('table') && !o.querySelector('img'))) return 'table';
    if (c.contains('text_latex') || c.contains('math') || (o.querySelector('mjx-container') && !o.querySelector('img'))) return 'math';
    if (o.matches('img, figure') || o.querySelector('img')) return 'image';
    if (c.contains('text_html')) return 'html';
    return 'markdown';
  };
  for (const o of outputs) {
    if (!visible(o)) continue;
    if (mathInOutputs.has(o.closest('.cell_output')) && o.querySelector('mjx-container[display="true"]')) continue;  // reported above
    if ([...badTables].some(t => o.contains(t))) continue;  // reported above as table-too-wide
    const kind = kindOf(o);
    const left = o.getBoundingClientRect().left;
    const right = contentRight(o);
    const width = right - left;
    if (right <= colRight + SLACK) continue;
    const cl = clipper(o.querySelector('pre, table, img') || o);  // the box that scrolls what is wide
    const scrolls = cl && (cl.overflow === 'auto' || cl.overflow === 'scroll');
    const inColumn = cl && cl.el.getBoundingClientRect().right <= colRight + SLACK;
    const what = `${kind} output ${px(width)} wide in a ${px(colWidth)} column`;
    const text = clip(o.innerText || o.textContent, 60);
    // on a phone, text and tables may scroll inside their own box however wide they are
    // a printed line must fit at the main width: scrolled, its end -- often the verdict -- is out of sight
    // on a phone, a figure keeps its labels legible by scrolling inside its own box (_static/figures.js)
    if ((kind === 'table' || ((kind === 'text' || kind === 'image') && narrow)) && scrolls && inColumn && (narrow || width <= scrollTolerance * colWidth + SLACK)) {
      note('wide-output', `${what}, scrolls inside <${cl.el.tagName.toLowerCase()}> (accepted ${narrow ? 'at a phone\'s width' : 'up to ' + scrollTolerance + 'x'}): ${text} ${describe(o)}`.trim());
      continue;
    }
    const how = cl ? (scrolls ? `scrolls inside <${cl.el.tagName.toLowerCase()}>` : 'cut off') : 'runs out of the column';
    add('output-too-wide', `${what}, ${how}: ${text} ${describe(o)}`.trim());
  }
  // Figures: drawn at 110 dpi (gridlib.plotting.STYLE), their 9-pt labels are 13.75 px tall; an
  // output figure shown below FIGURE_SCALE of its natural width has them under 10 px.
  const FIGURE_SCALE = 10 / 13.75;
  for (const img of document.querySelectorAll('.cell_output img')) {
    if (!visible(img) || !img.naturalWidth) continue;
    const scale = img.getBoundingClientRect().width / img.naturalWidth;
    if (scale < FIGURE_SCALE - 0.005)
      add('small-figure', `${img.getAttribute('src')} shown ${px(img.getBoundingClientRect().width)} wide, ` +
          `${Math.round(100 * scale)} % of its ${px(img.naturalWidth)}: its 9-pt labels are ` +
          `${(13.75 * scale).toFixed(1)} px ${describe(img)}`.trim());
  }
  const docW = document.documentElement.scrollWidth, viewW = document.documentElement.clientWidth;
  if (docW > viewW + SLACK) add('page-too-wide', `page is ${px(docW)} wide in a ${px(viewW)} window`);

  // Faint text in the content column: prose, captions, labels and table cells the book writes
  // (code, math and the theme's navigation aside) must reach a contrast of 4.5:1 with what is
  // behind them (WCAG AA) and a font weight of at least 400 (the theme sets captions at 300).
  if (!narrow) {
    const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    const behind = el => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(cs(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    const skip = 'pre, code, kbd, form, .highlight, mjx-container, .math, nav, .headerlink, .toc-entry, button, select, input, .cell_output .stderr';
    const seen = new Set();
    for (const el of root.querySelectorAll("*")) {
      if (el.closest(skip) || seen.size >= 5) continue;
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      if (!own || !visible(el)) continue;
      const st = cs(el);
      const [fg, bg] = [rgb(st.color), behind(el)];
      const [a, b] = [lum(fg) + 0.05, lum(bg) + 0.05];
      const ratio = Math.max(a, b) / Math.min(a, b) * (fg.length > 3 ? fg[3] : 1);
      const light = parseInt(st.fontWeight, 10) < 400;
      if (ratio >= 4.5 && !light) continue;
      const text = clip(el.textContent, 40);
      if (seen.has(text)) continue;
      seen.add(text);
      add('faint-text', `"${text}": ${light ? `font weight ${st.fontWeight}` : ''}${light && ratio < 4.5 ? ', ' : ''}` +
          `${ratio < 4.5 ? `contrast ${ratio.toFixed(1)}:1 (${st.color})` : ''} ${describe(el)}`.trim());
    }
  }

  // 5. images.
  for (const img of (narrow ? [] : document.images)) {
    if (!img.complete || img.naturalWidth === 0)
      add('broken-image', `${img.getAttribute('src')}${img.alt ? ' (alt: ' + clip(img.alt, 40) + ')' : ''} ${describe(img)}`.trim());
  }

  // 6. cell output text: errors, warnings, raw Markdown.
  const ERR = [
    [/Traceback \(most recent call last\)/, 'traceback'],
    [/^\s*[A-Za-z_][\w.]*(Error|Exception)\b(:.*)?$/m, 'error line'],
    [/^\s*(Error|ERROR|Exception)(:|$)/m, 'error line'],
    [/^\s*([A-Za-z_][\w.]*)?Warning:/m, 'warning line'],
    [/\.py:\d+: \w*Warning\b/, 'warning line'],
    [/^\s*(FAILED|ERROR)\b/m, 'test failure'],
    [/\b\d+ (failed|errors?)\b[^\n]* in [\d.]+s\b/, 'test failure'],  // pytest's summary line
  ];
  const MD = [
    [/(^|[\s(\[])\*\*[^\s*][^*\n]*?\*\*(?=$|[\s).,;:!?\]])/m, '**bold**'],
    [/`[^`\n]+`/, '`code`'],
    [/^\s*\|?\s*:?-{3,}:?\s*\|\s*:?-{3,}/m, '| --- | table rule'],
    [/\[[^\]\n]+\]\([^)\s]+\)/, '[text](url)'],
    [/(^|[^\\$\w])\$(?=[^\s$])[^$\n]{0,200}[^\s$\\]\$(?![\d$])/, '$math$'],
    [/\{(cite|ref|numref|eq|doc|math)\}`/, '{role}`...`'],
  ];
  // Markdown typography applied to what should have been literal (rendered outputs only)
  const MD_RENDERED = [[/(^|\s)[–—][a-z][\w-]*/m, '`--flag` turned into a dash by Markdown typography']];
  // test-runner output that arrived in pieces (pytest's progress dots and [100%] marker)
  const GARBLED = [
    [/^[ \t]{20,}\[\s*\d{1,3}%\]\s*$/m, 'pytest progress marker alone on a padded line'],
    [/^[ \t]*[.FEsx][ \t]*\n[ \t]*[.FEsx][ \t]*$/m, 'pytest progress dots one per line'],
  ];
  // text of an output, leaving out <code>/<pre> inside rendered HTML or Markdown
  const outputText = (o, kind) => {
    if (kind === 'text') return o.innerText || o.textContent;
    const parts = [];
    const w = document.createTreeWalker(o, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      let inCode = false;
      for (let e = n.parentElement; e && e !== o; e = e.parentElement)
        if (['CODE', 'PRE', 'KBD', 'SAMP', 'SCRIPT', 'STYLE', 'MJX-CONTAINER'].includes(e.tagName.toUpperCase())) { inCode = true; break; }
      if (!inCode) parts.push(n.nodeValue);
    }
    return parts.join('');
  };
  const lineOf = (text, idx) => { const s = text.lastIndexOf('\n', idx) + 1; const e = text.indexOf('\n', idx); return text.slice(s, e < 0 ? undefined : e); };
  for (const o of (narrow ? [] : outputs)) {
    const kind = kindOf(o);
    if (o.classList.contains('stderr')) add('output-error', `stderr output: ${clip(o.textContent, 100)} ${describe(o)}`.trim());
    else if (o.classList.contains('traceback') || o.classList.contains('error')) add('output-error', `error output: ${clip(o.textContent, 100)} ${describe(o)}`.trim());
    const text = outputText(o, kind);
    // line-based patterns only where lines are real (plain text); the traceback header anywhere
    for (const [re, what] of (kind === 'text' ? ERR : ERR.slice(0, 1))) {
      const m = text.match(re);
      if (m) { add('output-error', `${what}: ${clip(lineOf(text, m.index + m[0].length - 1), 100)} ${describe(o)}`.trim()); break; }
    }
    for (const [re, what] of (kind === 'text' ? MD : [...MD, ...MD_RENDERED])) {
      const m = text.match(re);
      if (m) add('raw-markdown', `${what} in ${kind} output: ${clip(lineOf(text, m.index + m[0].length - 1), 100)} ${describe(o)}`.trim());
    }
    if (kind === 'text') {
      for (const [re, what] of GARBLED) {
        const m = text.match(re);
        if (m) { add('output-garbled', `${what}: ${clip(text, 60)} ${describe(o)}`.trim()); break; }
      }
    }
  }

  // 7. leftovers of the build.
  for (const el of (narrow ? [] : document.querySelectorAll('.system-message, .problematic')))
    add('build-message', `${clip(el.textContent, 120)} ${describe(el)}`.trim());

  return {defects, notes, stats: {column: Math.round(colWidth), mathjax: mjReady, outputs: outputs.length,
          math: document.querySelectorAll('mjx-container').length,
          height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth}};
}
"""


# ---- what is checked in the page's HTML ------------------------------------------------------

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
SCRIPT_ATTR = re.compile(r"""([\w-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
# non-JavaScript data blocks (thebe's text/x-thebe-config, JSON) declare nothing
CLASSIC_TYPES = ("", "text/javascript", "application/javascript")
JS_SKIP = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`""", re.S)
JS_DECL = re.compile(r"(?<![\w$.])(const|let|class)\s+([A-Za-z_$][\w$]*)")


def top_level_declarations(js: str) -> list[str]:
    """Names that the script ``js`` declares with ``const``, ``let`` or ``class`` outside any
    block (``{...}``): the declarations that a classic script puts into the page's one global
    scope, where a second declaration of a name is a ``SyntaxError``. Comments and string
    literals are skipped; a destructuring declaration is not read (its names are not listed),
    and for ``let a = 1, b = 2`` only ``a`` is."""
    code = JS_SKIP.sub(lambda m: " " if m.group(0)[0] == "/" else '""', js)
    names, depth, pos = [], 0, 0
    for m in JS_DECL.finditer(code):
        chunk = code[pos:m.start()]
        depth += chunk.count("{") - chunk.count("}")
        pos = m.start()
        if depth == 0:
            names.append(m.group(2))
    return names


def script_defects(html: str) -> list[dict]:
    """The ``script-twice`` defects of a page's HTML (see the module's docstring)."""
    defects: list[dict] = []
    declared: dict[str, int] = {}
    sources: dict[str, int] = {}
    for n, m in enumerate(SCRIPT_TAG.finditer(html), 1):
        attrs = {a.group(1).lower(): next((g for g in a.groups()[1:] if g is not None), "")
                 for a in SCRIPT_ATTR.finditer(m.group(1))}
        src = attrs.get("src")
        if src:
            key = src.split("?")[0].split("#")[0]
            if key in sources:
                defects.append({"kind": "script-twice",
                                "detail": f"<script src={key}> loaded twice (scripts {sources[key]} and {n})"})
            else:
                sources[key] = n
            continue
        if attrs.get("type", "").strip().lower() not in CLASSIC_TYPES:
            continue  # an ES module has a scope of its own; a data block declares nothing
        for name in top_level_declarations(m.group(2)):
            if name in declared:
                defects.append({"kind": "script-twice",
                                "detail": f"top-level {name!r} declared twice (inline scripts "
                                          f"{declared[name]} and {n}): {m.group(2).strip()[:80]}"})
            else:
                declared[name] = n
    return defects


# ---- checking pages --------------------------------------------------------------------------

REFRESH = re.compile(r"""<meta\s+http-equiv=["']?refresh["']?\s+content=["']?\s*\d+\s*;\s*url=([^"'>\s]+)""", re.I)
IGNORED_URLS = ("favicon.ico",)  # asked for by the browser itself, not by the page


def pages_of(html_dir: Path) -> list[Path]:
    pages = []
    for p in sorted(html_dir.rglob("*.html")):
        rel = p.relative_to(html_dir)
        if rel.parts[0] in SKIP_DIRS or any(part.startswith(".") for part in rel.parts):
            continue
        pages.append(rel)
    return pages


def check_page(browser: Chromium, session: str, base: str, rel: Path, html_dir: Path,
               shot: Path | None, args, width: int | None = None) -> dict:
    """Open one page ``width`` CSS px wide (default: the main width) and return its entry of the
    report: defects, notes, stats, screenshot. At a width other than the main one only what
    depends on the width is checked (widths, and the page's requests)."""
    width = width or args.widths[0]
    narrow = width != args.widths[0]
    defects: list[dict] = []
    notes: list[dict] = []
    stats: dict = {}
    html = (html_dir / rel).read_text(errors="replace")
    redirect = REFRESH.search(html[:4000])
    if redirect and narrow:
        return {"defects": defects, "notes": notes, "stats": stats, "screenshot": None}
    if redirect:  # e.g. Jupyter Book's index.html: check that the target exists, not the page
        target = (html_dir / rel).parent / redirect.group(1).split("#")[0]
        if not target.is_file():
            defects.append({"kind": "http-error", "detail": f"redirects to a missing page: {redirect.group(1)}"})
        notes.append({"kind": "redirect", "detail": f"redirects to {redirect.group(1)} (checked there)"})
        return {"defects": defects, "notes": notes, "stats": stats, "screenshot": None}

    if not narrow:
        defects += script_defects(html)
    events: list = []
    browser.set_width(session, width)
    browser.drain_events(session, [])
    nav = browser.call("Page.navigate", {"url": base + rel.as_posix()}, session)
    if nav.get("errorText"):
        defects.append({"kind": "http-error", "detail": f"cannot open the page: {nav['errorText']}"})
        return {"defects": defects, "notes": notes, "stats": stats, "screenshot": None}
    browser.wait_event("Page.loadEventFired", session, PAGE_TIMEOUT_S, events)
    expr = (f"({PAGE_CHECK})({args.scroll_tolerance}, {int(args.mathjax_timeout * 1000)}, "
            f"{'true' if narrow else 'false'})")
    try:
        value = browser.evaluate(session, expr)
    except RuntimeError as exc:
        raise RuntimeError(f"page check script failed: {exc}") from exc
    defects += value["defects"]
    notes += value["notes"]
    stats = value["stats"]

    if shot is not None:
        h = max(min(int(stats.get("height", 0)), args.max_shot_height), 1)
        w = max(int(stats.get("width", 0)), width)
        png = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True, "optimizeForSpeed": True,
            "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}, session)
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(png["data"]))

    # what the network and the JavaScript console saw while the page loaded and was checked
    browser.drain_events(session, events)
    urls: dict[str, str] = {}
    failed: dict[str, str] = {}
    for ev in events:
        m, p = ev["method"], ev.get("params", {})
        if m == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
        elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
            failed[p["response"]["url"]] = f"HTTP {p['response']['status']}"
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            failed.setdefault(urls.get(p["requestId"], "?"), p.get("errorText", "failed"))
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            msg = (d.get("exception", {}).get("description") or d.get("text") or "exception").splitlines()[0]
            (defects if args.fail_on_js_errors else notes).append({"kind": "js-error", "detail": msg[:150]})
    for u, why in failed.items():
        path = u[len(base):] if u.startswith(base) else u
        if path.split("?")[0].endswith(IGNORED_URLS):
            continue
        if u.startswith(base):
            defects.append({"kind": "http-error", "detail": f"{why}: {path}"})
        else:
            notes.append({"kind": "external-request", "detail": f"{why}: {u[:150]}"})
    return {"defects": defects, "notes": notes, "stats": stats,
            "screenshot": str(shot) if shot is not None and shot.exists() else None}


def shot_path(out: Path, rel: Path, width: int, main_width: int) -> Path:
    """``<out>/<page>.png`` at the main width, ``<out>/<page>-390px.png`` at another."""
    suffix = "" if width == main_width else f"-{width}px"
    return out / rel.parent / f"{rel.stem}{suffix}.png"


def check_all(exe: str, base: str, html_dir: Path, pages: list[Path], out: Path, args) -> tuple[list, str]:
    """Check ``pages`` at every width of ``args.widths`` (the pages of ``args.narrow_pages`` only,
    if given, at the widths after the first) in ``args.jobs`` tabs of one browser; returns the
    report, page by page, width by width."""
    browser = Chromium(exe, args.widths[0], args.height, out / "chromium.log")
    todo: queue.Queue = queue.Queue()
    items = [(rel, w) for rel in pages for w in args.widths
             if w == args.widths[0] or args.narrow_pages is None or rel in args.narrow_pages]
    for item in items:
        todo.put(item)
    report: dict[tuple[Path, int], dict] = {}

    def worker() -> None:
        session = browser.open_tab()
        while True:
            try:
                rel, width = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.monotonic()
            shot = None if args.no_screenshots else shot_path(out, rel, width, args.widths[0])
            try:
                entry = check_page(browser, session, base, rel, html_dir, shot, args, width)
            except (TimeoutError, RuntimeError) as exc:
                entry = {"defects": [{"kind": "check-failed", "detail": str(exc)[:200]}],
                         "notes": [], "stats": {}, "screenshot": None}
            entry = {"page": rel.as_posix(), "width": width, **entry,
                     "seconds": round(time.monotonic() - t0, 2)}
            report[(rel, width)] = entry
            if args.verbose:
                print(f"  {entry['page']} at {width}px: {len(entry['defects'])} defects, {entry['seconds']} s",
                      file=sys.stderr)

    try:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        browser.close()
    missing = [item for item in items if item not in report]
    if missing:
        raise BrowserUnavailable(f"the browser stopped before {len(missing)} pages were checked")
    return [report[item] for item in items], browser.version


def run(args) -> int:
    html_dir = Path(args.html).resolve()
    if not (html_dir / "index.html").is_file():
        print(f"browser-check: no built book at {html_dir} (build it first: make book-ci)", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else html_dir.parent / "browser-check"
    pages = [Path(p) for p in args.pages] if args.pages else pages_of(html_dir)
    args.widths = [int(w) for w in str(args.widths).split(",") if w.strip()]
    if not args.widths or min(args.widths) < 200:
        print(f"browser-check: --widths must list widths of at least 200 px, got {args.widths}", file=sys.stderr)
        return 2
    args.narrow_pages = ([Path(p) for p in args.narrow_pages.split(",") if p.strip()]
                         if args.narrow_pages else None)
    require = args.require_browser or os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

    def unavailable(why: str) -> int:
        if require:
            print(f"browser-check: FAILED: {why}; a browser is required here (CI or --require-browser).",
                  file=sys.stderr)
            return 2
        print(f"browser-check: SKIPPED the browser check of the built pages: {why}.")
        return 0

    exe = find_chromium(args.chromium)
    if exe is None:
        return unavailable(f"no Chromium at {args.chromium!r}" if args.chromium else
                           "no Chromium found (install Debian's `chromium`, or set CHROMIUM=/path/to/chrome)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_start = time.monotonic()
    server, base = serve(html_dir)
    try:
        report, version = check_all(exe, base, html_dir, pages, out, args)
    except BrowserUnavailable as exc:
        log = out / "chromium.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        print(tail, file=sys.stderr)
        return unavailable(str(exc))
    finally:
        server.shutdown()
        server.server_close()
    elapsed = time.monotonic() - t_start

    def where(e: dict) -> str:  # the page, and the width where it is not the main one
        return e["page"] if e["width"] == args.widths[0] else f"{e['page']} at {e['width']}px"

    lines = [f"{where(e)}: {d['kind']}: {d['detail']}" for e in report for d in e["defects"]]
    note_lines = [f"{where(e)}: note: {d['kind']}: {d['detail']}" for e in report for d in e["notes"]]
    kinds: dict[str, int] = {}
    for e in report:
        for d in e["defects"]:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    bad_pages = len({e["page"] for e in report if e["defects"]})
    n_pages = len({e["page"] for e in report})
    summary = (f"browser-check: {n_pages} pages at {'/'.join(map(str, args.widths))} px ({len(report)} views), "
               f"{len(lines)} defects on {bad_pages} pages"
               + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")" if kinds else "")
               + f", {len(note_lines)} notes; {elapsed:.0f} s with {version}; screenshots and report in {out}")
    for line in lines:
        print(line)
    print(summary)
    (out / "report.txt").write_text("\n".join([*lines, *note_lines, summary]) + "\n")
    (out / "report.json").write_text(json.dumps(
        {"html": str(html_dir), "browser": version, "seconds": round(elapsed, 1),
         "widths": args.widths, "height": args.height, "scroll_tolerance": args.scroll_tolerance,
         "defects": len(lines), "pages": report}, indent=1, ensure_ascii=False) + "\n")
    return 1 if lines else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", help="folder of the built HTML book (with index.html)")
    ap.add_argument("pages", nargs="*", help="pages to check, relative to the folder (default: all)")
    ap.add_argument("--out", help="folder for screenshots and report (default: <html>/../browser-check)")
    ap.add_argument("--chromium", help="browser executable (default: $CHROMIUM, else /usr/bin/chromium)")
    ap.add_argument("--require-browser", action="store_true",
                    help="fail instead of skipping when no browser can be started (implied by $CI)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="pages checked at once")
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)),
                    help="window widths in CSS px, the main one first (default 1280,390: a laptop and "
                         "a phone; below 700 px as a phone)")
    ap.add_argument("--narrow-pages", default=None,
                    help="comma-separated pages to check at the widths after the first (default: all)")
    ap.add_argument("--height", type=int, default=900, help="window height in CSS px (default 900)")
    ap.add_argument("--scroll-tolerance", type=float, default=2.0,
                    help="text/table outputs may scroll sideways up to this many column widths (default 2)")
    ap.add_argument("--mathjax-timeout", type=float, default=30.0, help="seconds to wait for MathJax")
    ap.add_argument("--max-shot-height", type=int, default=30000, help="cap of screenshot height in px")
    ap.add_argument("--no-screenshots", action="store_true")
    ap.add_argument("--fail-on-js-errors", action="store_true",
                    help="count uncaught JavaScript exceptions as defects (default: notes)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
