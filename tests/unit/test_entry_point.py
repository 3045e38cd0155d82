"""``opentelemetry-instrument`` finds tokenmeter through its entry point and configures + instruments it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_opentelemetry_instrumentor_entry_point_configures_and_instruments() -> None:
    code = textwrap.dedent(
        """
        from importlib.metadata import entry_points
        import tokenmeter
        (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenmeter"]
        instrumentor = ep.load()()
        instrumentor.instrument()
        assert tokenmeter.active() is not None
        assert "openai" in tokenmeter.instrumented()
        instrumentor.uninstrument()
        assert tokenmeter.active() is None and tokenmeter.instrumented() == []
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
