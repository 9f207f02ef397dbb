# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pipeline stage in a thread of its own, so that hashing runs beside reading and
compressing.

hashlib and zstd release the GIL on large buffers, so two stages really use two CPUs.
"""

from __future__ import annotations

import queue
import threading
import typing as t

T = t.TypeVar("T")
_STOP = object()


class Stage(t.Generic[T]):
    """Calls ``consume`` with every item put, in order, in a background thread.

    The queue is bounded (``depth`` items), so memory stays bounded.  The first error
    the consumer raises is raised again by the next :meth:`put` or by :meth:`close`.
    """

    def __init__(
        self,
        consume: t.Callable[[T], None],
        depth: int = 16,
        name: str = "snapshot-stage",
    ) -> None:
        self.consume = consume
        self.items: queue.Queue[t.Any] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is _STOP:
                return
            if self.error is None:
                try:
                    self.consume(item)
                except (
                    BaseException
                ) as error:  # handed to the producer, which raises it
                    self.error = error

    def put(self, item: T) -> None:
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def stop(self) -> None:
        """Let the thread finish what it has and end; errors stay in :attr:`error`."""
        if self.thread.is_alive():
            self.items.put(_STOP)
            self.thread.join()

    def close(self) -> None:
        """Finish every item, then raise the consumer's error if it had one."""
        self.stop()
        if self.error is not None:
            raise self.error
