"""Three rank windows in one float64 buffer, stepped by one compiled call per event.

``rarity_likelihood`` ranks three features of each event against the last ``history``
values of each (arrival order for eviction, sorted order for ranks). In pure Python that was
about a dozen ``bisect`` calls on ``array('d')`` per event, each boxing a float per
comparison: two thirds of the detector's time once the windows are full. Here one numba
call ranks all three values and (optionally) inserts them, evicting the oldest.

Layout of ``buf`` (capacity ``cap`` per region, ``m`` values used in each):
``[ring0 | ring1 | ring2 | sorted0 | sorted1 | sorted2]``. Until the windows are full the
rings fill in arrival order (``pos`` stays 0); the buffer grows by doubling, so a young
stream holds a few hundred bytes, not ``48 * history``. Only comparisons and copies happen
here, no float arithmetic, so results are bit-identical to the ``bisect`` version.

>>> buf = new_buffer(4)
>>> step(buf, 4, 0, 0, 4, 3.0, 0.0, 3.0, True)  # empty windows; then learn the values
(0, 0, 0, 0.0, 0.0)
>>> step(buf, 4, 1, 0, 4, 5.0, 0.0, 3.0, False)  # against [3.0], [0.0], [3.0]
(0, 1, 1, 0.0, 0.0)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba import njit

INITIAL_CAPACITY = 4  # a young stream holds 6 * 4 doubles (~300 B with the header)


def _cache_dir() -> None:
    """numba caches compiled code next to this file, else in NUMBA_CACHE_DIR; with neither
    writable (a read-only root filesystem in a container) ``cache=True`` fails at import.
    Then the cache goes to the temporary directory (the pods' writable emptyDir)."""
    config: Any = numba.config  # its settings are read from the environment: untyped
    if config.CACHE_DIR or os.access(Path(__file__).parent, os.W_OK):
        return
    # numba read its environment when it was imported (PyOD imports it first): set both.
    path = str(Path(tempfile.gettempdir()) / "pynomaly-numba-cache")
    os.environ["NUMBA_CACHE_DIR"] = config.CACHE_DIR = path


_cache_dir()
_jit: Callable[[Any], Any] = njit(cache=True, nogil=True)


@_jit
def _rank(buf: np.ndarray, start: int, m: int, x: float) -> tuple[int, int]:
    """(bisect_right, bisect_left) of ``x`` in ``buf[start:start + m]``, as offsets."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < buf[start + mid]:
            hi = mid
        else:
            lo = mid + 1
    right = lo
    lo, hi = 0, right
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[start + mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return right, lo


@_jit
def _add(buf: np.ndarray, cap: int, c: int, m: int, pos: int, history: int, x: float,
         right: int) -> None:
    """Insert ``x`` (its bisect_right offset is ``right``) into channel ``c``, evicting the
    oldest value once the window holds ``history`` values."""
    ring = c * cap
    srt = (3 + c) * cap
    if m < history:
        buf[ring + m] = x
        k = right
        for i in range(m, k, -1):
            buf[srt + i] = buf[srt + i - 1]
        buf[srt + k] = x
        return
    old = buf[ring + pos]
    buf[ring + pos] = x
    j = _rank(buf, srt, m, old)[1]  # bisect_left: the first stored copy of ``old``
    k = right - 1 if j < right else right  # where ``x`` goes once ``old`` is gone
    if k >= j:
        for i in range(j, k):
            buf[srt + i] = buf[srt + i + 1]
    else:
        for i in range(j, k, -1):
            buf[srt + i] = buf[srt + i - 1]
    buf[srt + k] = x


@_jit
def step(buf: np.ndarray, cap: int, m: int, pos: int, history: int, x0: float, x1: float,
         x2: float, learn: bool) -> tuple[int, int, int, float, float]:
    """Two-sided ranks ``min(#<=x, #>=x)`` of the three values against the windows, and
    the smallest and largest stored value of channel 1 (before any insertion); with
    ``learn``, then insert the values. The caller advances ``m``/``pos`` and grows ``buf``
    before a call that would overflow it."""
    r0, l0 = _rank(buf, 3 * cap, m, x0)
    r1, l1 = _rank(buf, 4 * cap, m, x1)
    r2, l2 = _rank(buf, 5 * cap, m, x2)
    lo = hi = 0.0
    if m > 0:
        lo = buf[4 * cap]
        hi = buf[4 * cap + m - 1]
    if learn:
        _add(buf, cap, 0, m, pos, history, x0, r0)
        _add(buf, cap, 1, m, pos, history, x1, r1)
        _add(buf, cap, 2, m, pos, history, x2, r2)
    return (r0 if r0 < m - l0 else m - l0, r1 if r1 < m - l1 else m - l1,
            r2 if r2 < m - l2 else m - l2, lo, hi)


def new_buffer(cap: int) -> np.ndarray:
    return np.empty(6 * cap, dtype=np.float64)


def grow(buf: np.ndarray, cap: int, m: int, new_cap: int) -> np.ndarray:
    """A copy of the ``m`` used values of each region in a buffer of capacity ``new_cap``."""
    out = new_buffer(new_cap)
    out.reshape(6, new_cap)[:, :m] = buf.reshape(6, cap)[:, :m]
    return out


def capacity_for(m: int, history: int) -> int:
    """Capacity that holds ``m`` values with room for the next one (until ``history``)."""
    cap = INITIAL_CAPACITY
    while cap <= m and cap < history:
        cap *= 2
    return min(cap, history)


def pack(buf: np.ndarray, cap: int, m: int) -> bytes:
    """The used part of every region, concatenated (8 bytes per stored value)."""
    return buf.tobytes() if cap == m else buf.reshape(6, cap)[:, :m].tobytes()


def unpack(blob: bytes | bytearray, m: int, history: int) -> tuple[np.ndarray, int]:
    """A buffer from ``pack``'s bytes, with room for the next value (a ``bytearray``, as
    protocol-5 pickles restore full windows, is used in place: no copy)."""
    cap = capacity_for(m, history)
    flat = np.frombuffer(blob, dtype=np.float64)
    if cap == m:
        return (flat if isinstance(blob, bytearray) else flat.copy()), cap
    return grow(flat, m, m, cap), cap


def sorted_values(buf: np.ndarray, cap: int, m: int, c: int) -> list[float]:
    """Channel ``c``'s stored values in ascending order (as Python floats)."""
    return buf[(3 + c) * cap:(3 + c) * cap + m].tolist()  # type: ignore[no-any-return]


def warm_up() -> None:
    """Compile (or load from numba's cache) once, at import: not on a stream's first event."""
    buf = new_buffer(2)
    step(buf, 2, 0, 0, 2, 1.0, 0.0, 1.0, True)
    step(buf, 2, 1, 0, 2, 2.0, 1.0, 1.5, True)
    step(buf, 2, 2, 0, 2, 0.5, -1.5, 1.0, True)


warm_up()
