"""Fixtures for the real services (PostgreSQL, Slurm, Chromium); helpers in tests/services.py.

Loaded from tests/conftest.py with `pytest_plugins = ["conftest_services"]`. Under CI=true a
missing service fails the test that asks for it; elsewhere the test skips, naming
scripts/services/start.sh.
"""
from __future__ import annotations

from typing import Iterator

import pytest

import services


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The test PostgreSQL server's own database (shared: create what you need elsewhere)."""
    return services.pg_server_url()


@pytest.fixture
def pg_url(pg_server_url: str, request) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped after it), as a SQLAlchemy URL
    `postgresql+psycopg://...`."""
    with services.fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def slurm() -> services.SlurmCluster:
    """The local one-node Slurm cluster with accounting; `slurm.executor(folder)` gives a submitit
    AutoExecutor on its partition."""
    return services.slurm_cluster()


@pytest.fixture(scope="session")
def slurm_available(slurm: services.SlurmCluster) -> services.SlurmCluster:
    """The same as `slurm`, for tests that only need to know it is there."""
    return slurm


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium executable (for Playwright's executable_path)."""
    return services.chromium_executable()


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    """A headless Playwright Chromium (one per test module), closed after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium_path, headless=True,
                                      args=services.CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page for one test."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()
