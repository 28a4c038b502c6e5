"""Numbered commands and their replies, for the two browser drivers of this folder.

Chromium's DevTools Protocol (``check_pages.Chromium``, over a pipe) and WebDriver BiDi
(``live_firefox.Firefox``, over a WebSocket) both number each command and answer it with a
message carrying the same ``id``, read by a thread of the driver. :meth:`Replies.request` is the
one place that sends a command and waits for its answer: it takes the next id, registers a queue
for it, sends, and waits at most ``timeout`` seconds; the reading thread hands each reply to
:meth:`Replies.deliver`, and :meth:`Replies.fail_all` answers every waiting command when the
browser has gone.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Replies:
    """The commands sent and not yet answered: ``{id: queue}``, one queue per command."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while an id is taken and its command is written
        self.next_id = 0
        self.waiting: dict[int, queue.Queue] = {}

    def request(self, method: str, send: Callable[[int], None], timeout: float) -> dict:
        """Send one command and return its reply (the whole message). ``send(msg_id)`` writes
        the command numbered ``msg_id``; it is called under :attr:`lock`, so commands go out
        whole and in the order of their ids, and what it raises propagates. Raises
        ``TimeoutError`` when no reply comes within ``timeout`` seconds."""
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.next_id += 1
            msg_id = self.next_id
            self.waiting[msg_id] = q
            try:
                send(msg_id)
            except BaseException:
                self.waiting.pop(msg_id, None)
                raise
        try:
            return q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{method}: no answer within {timeout:.0f} s") from None
        finally:
            self.waiting.pop(msg_id, None)

    def deliver(self, msg_id: int, message: dict) -> None:
        """Hand ``message``, the reply to command ``msg_id``, to its waiting :meth:`request`
        (dropped when nobody waits for it any more: it came after the time-out)."""
        q = self.waiting.get(msg_id)
        if q is not None:
            q.put(message)

    def fail_all(self, message: dict) -> None:
        """Answer every waiting command with ``message`` (the browser has gone)."""
        for q in list(self.waiting.values()):
            q.put(message)
