"""The ``--html`` report page in a real headless Chromium (Debian ``chromium``: ``scripts/backends.sh install``).

* The page renders with every network request refused (``--host-resolver-rules``): it needs nothing from outside.
* Its script ran to the end and recorded no error (``data-ready="1"``, ``data-errors="0"`` in the DOM Chromium
  dumps) and Chromium logged no console error -- and a page with a failing script is caught by the same check.
* ``docs/img/report.png`` (the README's image) is this page's screenshot: a real PNG of the rendered size, not
  blank. ``TOKENMETER_UPDATE_SCREENSHOTS=1`` rewrites it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest
from backends import BackendUnavailable, screenshot
from conftest import backend_unavailable
from report_sample import sample

from tokenmeter.finops.html import render

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "docs" / "img" / "report.png"
SIZE = (1100, 2140)
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        backend_unavailable("chromium", "not installed; run `scripts/backends.sh install chromium`")
    return found


def _dump_dom(page: Path) -> tuple[str, str]:
    """(the DOM after scripts ran, Chromium's log with console messages) of a local page, network refused."""
    with tempfile.TemporaryDirectory(prefix="tokenmeter-chromium-") as profile:
        cmd = [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            OFFLINE,
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=90)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # helpers left in our own process group
            except ProcessLookupError:
                pass
    return out, err


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "ERROR" in line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    usage, runs, forecast, budgets = sample()
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(usage, runs, title="acme-agents · November 2026", forecast=forecast, budgets=budgets))
    return path


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=|url\(|@import|https?://""", text), "the page must fetch nothing"
    assert text.count("<svg") == 4  # two stacked spend charts, the run histogram, the forecast band
    assert "p50" in text and "p99" in text and "Budgets burn" in text and "Forecast" in text


def test_the_page_renders_in_chromium_without_errors(page: Path) -> None:
    dom, log = _dump_dom(page)
    assert 'data-ready="1"' in dom, f"the page's script did not run to its end:\n{log[-2000:]}"
    assert re.search(r'id="tm-errors" data-errors="0"></pre>', dom), dom[:2000]
    assert _console_errors(log) == []
    assert dom.count("<rect") > 200 and "edge-case multiplier" in dom


def test_a_script_error_would_be_caught(page: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        page.read_text().replace("</body>", "<script>setTimeout(function(){null.boom();},0)</script></body>")
    )
    dom, log = _dump_dom(broken)
    assert 'data-errors="1"' in dom and "boom" in dom
    assert _console_errors(log), "Chromium's log shows the uncaught error too"


def test_screenshot_in_docs_is_this_page(page: Path, tmp_path: Path) -> None:
    try:
        png = screenshot(page.as_uri(), tmp_path / "report.png", window_size=SIZE)
    except BackendUnavailable as e:
        backend_unavailable("chromium", e)
    assert _png_size(png) == SIZE and _looks_drawn(png)
    if os.environ.get("TOKENMETER_UPDATE_SCREENSHOTS") == "1":
        IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, IMAGE)
    assert IMAGE.is_file(), f"{IMAGE} missing: run with TOKENMETER_UPDATE_SCREENSHOTS=1"
    assert _png_size(IMAGE) == SIZE and _looks_drawn(IMAGE)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _looks_drawn(path: Path) -> bool:
    """Many distinct pixel bytes: charts and text, not a blank or single-colour page."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw)) > 100 and path.stat().st_size > 50_000
