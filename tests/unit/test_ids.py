"""Run and reservation ids: unique, uuid-shaped, and never repeated by a forked child."""

from __future__ import annotations

import os
import re
import sys

import pytest

from tokenmeter._ids import new_id


def test_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_forked_child_draws_its_own_prefix() -> None:
    read, write = os.pipe()
    parent_next = new_id()
    pid = os.fork()
    if pid == 0:  # child: report the id it would use next, then leave without running pytest's teardown
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child_next = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child_next)
    assert child_next[:16] != parent_next[:16]
