"""Suite-wide: tests never write the user's real FinOps ledger (tests that test the ledger give a path)."""

from __future__ import annotations

import os

os.environ.setdefault("TOKENMETER_LEDGER", "none")
