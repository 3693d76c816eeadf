"""The leaderboard app in a real browser: `ssmboard serve` in a child process on a free loopback
port over a seeded (or empty) store, driven by Playwright's headless Chromium (the `browser`
and `page` fixtures of tests/conftest_services.py). Screenshots of each tab are saved under
the pytest tmp dir and their paths printed (`pytest -s` shows them)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import board_seed
from conftest import REPO

pytestmark = pytest.mark.slow
RANKED = ["fast-c64", "mid-c128", "ind-c64", "slow-c16", "oom-c256"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ssmboard serve` over the store in ``home``, stopped by its PID."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SSMBOARD_HOME": str(home), "GRADIO_ANALYTICS_ENABLED": "False",
               "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(REPO)}
        env.pop("SSMBOARD_DB", None)
        self.log = open(home / "serve.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "ssmboard.cli", "serve", "--port", str(self.port)],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ssmboard serve exited: {(home / 'serve.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ssmboard serve did not answer on {self.url}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _store_home(tmp_path_factory, name: str, seed: bool) -> Path:
    from ssmboard.db.engine import dispose_stores

    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSMBOARD_HOME", str(home))
        mp.delenv("SSMBOARD_DB", raising=False)
        if seed:
            board_seed.seed()
        dispose_stores()
    return home


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The app over the seeded store, and what `ssmboard leaderboard --format csv` printed for it.

    The terminal ranking is taken before the server starts: another process that opens and
    closes the SQLite file while the server runs deletes the server's WAL file (engine.py's
    read-only probe drops the server's locks; reported), after which the server's writes are
    invisible to other processes."""
    home = _store_home(tmp_path_factory, "board_seeded", seed=True)
    env = {**os.environ, "SSMBOARD_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("SSMBOARD_DB", None)
    out = subprocess.run([sys.executable, "-m", "ssmboard.cli", "leaderboard", "--format", "csv"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    server = Server(home)
    server.cli_csv = out.stdout
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("board_screenshots")


def _shot(page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _open(page, url: str) -> None:
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(url)
    page.wait_for_selector('#board-table [data-testid="cell-0-1"]', timeout=60_000)


def _column(page, table: str, col: int) -> list[str]:
    cells = page.locator(f'#{table} [data-testid^="cell-"][data-testid$="-{col}"]')
    return [t.strip() for t in cells.all_inner_texts()]


def _wait_rows(page, want: list[str], timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        got = _column(page, "board-table", 1)
        if got == want:
            return got
        time.sleep(0.3)
    return got


def _wait_text(locator, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = locator.inner_text()
        if text in got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{text!r} did not appear; the element shows {got[:500]!r}")


def _choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()
    page.keyboard.press("Escape")


def test_board_ranks_filters_sorts_and_searches(seeded, page, shots):
    _open(page, seeded.url)
    assert _wait_rows(page, RANKED) == RANKED
    assert page.locator("#board-notes").inner_text().count("Intel Xeon") == 1
    assert "OOM" in _column(page, "board-table", 2)
    _shot(page, shots, "leaderboard")

    _choose(page, "filter-backend", "independent")
    assert _wait_rows(page, ["ind-c64"]) == ["ind-c64"]
    _shot(page, shots, "leaderboard-filtered")

    _open(page, seeded.url)
    _choose(page, "sort-by", "variant")
    assert _wait_rows(page, sorted(RANKED)) == sorted(RANKED)

    page.fill("#search textarea", "c128")
    assert _wait_rows(page, ["mid-c128"]) == ["mid-c128"]

    _open(page, seeded.url)  # another device: its own ranking
    _choose(page, "device", "Intel Xeon")
    assert _wait_rows(page, ["slow-c16", "fast-c64"]) == ["slow-c16", "fast-c64"]


def test_terminal_ranking_matches_the_app(seeded, page):
    names = [line.split(",")[1] for line in seeded.cli_csv.strip().splitlines()[1:]]
    _open(page, seeded.url)
    assert _wait_rows(page, names) == names == RANKED


def test_compare_tab_table_and_plots(seeded, page, shots):
    _open(page, seeded.url)
    page.get_by_role("tab", name="Compare").click()
    table = page.locator("#compare-table")
    table.get_by_text("Δ mid-c128").first.wait_for(timeout=30_000)  # the two best, chosen on load
    _choose(page, "compare-variants", "ind-c64")
    page.click("#compare-go")
    table.get_by_text("Δ ind-c64").first.wait_for(timeout=30_000)
    assert "within noise (stderr)" in table.inner_text()
    assert "worse (paired-bootstrap)" in table.inner_text()
    plot = page.locator("#plot-chunk .js-plotly-plot")
    plot.wait_for(timeout=30_000)
    legend = page.locator("#plot-chunk .legendtext").all_text_contents()
    assert legend == ["fast-c64", "mid-c128", "ind-c64"]
    assert set(page.locator("#plot-kl .legendtext").all_text_contents()) == {"fast-c64", "ind-c64"}
    _shot(page, shots, "compare")


def test_speed_and_variant_tabs(seeded, page, shots):
    _open(page, seeded.url)
    page.get_by_role("tab", name="Speed vs fidelity").click()
    msg = page.locator("#pareto-msg")
    msg.get_by_text("Pareto front: fast-c64").wait_for(timeout=30_000)
    page.locator("#pareto-plot .js-plotly-plot").wait_for(timeout=30_000)
    _shot(page, shots, "speed-vs-fidelity")
    page.get_by_role("tab", name="Variant").click()
    page.locator("#variant-spec").get_by_text("fingerprint").wait_for(timeout=30_000)
    assert "Intel Xeon" in page.locator("#variant-results").inner_text()  # each result with its environment
    _shot(page, shots, "variant")


def test_register_form_rejects_a_bad_spec_and_accepts_a_good_one(seeded, page, shots):
    from ssmboard.db import queries
    from ssmboard.db.engine import get_store

    _open(page, seeded.url)
    page.get_by_role("tab", name="Jobs").click()
    page.fill("#reg-name textarea", "ui-c3")
    page.fill("#reg-chunk textarea", "3")
    page.click("#reg-go")
    msg = page.locator("#reg-msg")
    msg.get_by_text("invalid chunk_size 3").wait_for(timeout=30_000)
    assert "Not registered" in msg.inner_text() and "power of two" in msg.inner_text()
    _shot(page, shots, "jobs-rejected")
    page.fill("#reg-name textarea", "ui-c32")
    page.fill("#reg-chunk textarea", "32")
    page.fill("#reg-suite textarea", "no-such-suite")
    page.click("#reg-go")
    msg.get_by_text("Not submitted").wait_for(timeout=30_000)
    assert "unknown suite 'no-such-suite'" in msg.inner_text() and "Registered ui-c32" in msg.inner_text()
    page.fill("#reg-suite textarea", "quick")
    page.click("#reg-go")
    msg.get_by_text("queued for suite 'quick'").wait_for(timeout=30_000)
    queue_table = page.locator("#jobs-table")
    queue_table.get_by_text("ui-c32").first.wait_for(timeout=30_000)
    _shot(page, shots, "jobs")
    store = get_store(f"sqlite:///{seeded.home / 'ssmboard.db'}")
    rec = queries.active_variant("ui-c32", store=store)
    assert rec is not None and rec["spec"]["chunk_size"] == 32
    assert queries.active_variant("ui-c3", store=store) is None


def test_jobs_tab_shows_the_queue_and_failures(seeded, page):
    _open(page, seeded.url)
    page.get_by_role("tab", name="Jobs").click()
    failures = page.locator("#jobs-failures")
    _wait_text(failures, "illegal memory access")
    assert "ind-c64" in failures.inner_text()
    assert "slow-c16" in page.locator("#jobs-table").inner_text()
    assert "failed 1" in page.locator("#jobs-queue").inner_text()


def test_empty_store_shows_how_to_start(tmp_path_factory, page, shots):
    server = Server(_store_home(tmp_path_factory, "board_empty", seed=False))
    try:
        page.set_viewport_size({"width": 1500, "height": 900})
        page.goto(server.url)
        notes = page.locator("#board-notes")
        notes.get_by_text("No results yet").wait_for(timeout=60_000)
        assert "ssmboard eval" in notes.inner_text() and "variants register" in notes.inner_text()
        assert not page.locator("#board-table").is_visible()
        _shot(page, shots, "empty-store")
    finally:
        server.stop()
