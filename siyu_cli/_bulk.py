"""Bulk work over every contact: the cyclic garbage collector paused while it runs.

A pass holds a dict per contact and allocates a few more objects per contact and event; none of
them form reference cycles (refcounting frees them), yet each automatic collection walks every
object held, so with a million contacts the collections alone cost seconds. Collection resumes
at the end, and whatever cycles did form are found then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bulk() -> Iterator[None]:
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
