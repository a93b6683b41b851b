"""The rendered day board, kept in each app process for the next desk that asks for the same board.

Sixteen desks of a clinic poll the same day's board; each change to the day (a booking, a check-in) moves
the board's stamp, and the first poll after it renders the new board. Every other desk then gets that
rendering instead of reading, decrypting and rendering the same 400 appointments again. What the cache
keeps is exactly what the desk would see, for the same clinic, day, stamp and view (what the role may
see and do, the patient being booked, the clinic's today); so a desk is never shown a board another
clinic's data or another role's view could have made. Every view is still audited with the patients it
shows, and the CSRF token in the board's forms is each session's own (the cached text holds a marker in
its place).

A board stays as fresh as the poll makes it: the stamp changes with every change to the day's
appointments or availability and every five minutes, so an entry lives five minutes at the most.
"""

import threading
import time as clock
from collections import OrderedDict

MAX_ENTRIES = 32  # some boards of a few hundred KB each, per process
MAX_AGE_S = 300
CSRF_MARK = "\x00csrf\x00"


class BoardCache:
    def __init__(self, entries: int = MAX_ENTRIES, max_age: float = MAX_AGE_S):
        self.entries, self.max_age = entries, max_age
        self._items: OrderedDict[tuple, tuple[float, str, list]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[str, list] | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if clock.monotonic() - found[0] > self.max_age:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return found[1], found[2]

    def put(self, key: tuple, html: str, patient_ids: list) -> None:
        with self._lock:
            self._items[key] = (clock.monotonic(), html, patient_ids)
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


boards = BoardCache()
