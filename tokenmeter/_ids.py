"""Unique ids (workflow run ids, budget reservation ids) without a system call per id.

``uuid.uuid4()`` reads ``os.urandom`` on every call: a system call that costs tens of µs on some
virtual machines, on the hot path of every budgeted call and every workflow run. An id here is a
random 64-bit prefix drawn once per process (again in a forked child) followed by a counter: 32 hex
digits like a uuid4's, unique within the process by construction and across processes and hosts with
the odds of a 64-bit random collision. They are identifiers, not secrets.
"""

from __future__ import annotations

import itertools
import os

_prefix = ""
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(1)


_reseed()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new 32-hex-digit id, unique across processes."""
    return f"{_prefix}{next(_counter):016x}"
