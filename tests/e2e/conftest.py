"""The real stack for end-to-end tests: trained Rasa, action server and bot service on 127.0.0.1.

Needs `python -m bot setup --for-tests` first (the README's test command runs it): the
trained model and Debian's chromium are prerequisites, not things a test builds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from rich.console import Console

from bot.config import Settings, get_settings
from bot.ops.doctor import check_model
from bot.ops.environments import CHROMIUM_HEADLESS_ARGS, CHROMIUM_PATH
from bot.ops.setup import prepare_state
from bot.ops.stack import isolated_settings, started_stack
from bot.ops.supervisor import ServiceFailedError, Supervisor


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a private stack: its own ports, database and index, the project's model."""
    project = get_settings()
    if not check_model(project).ok:
        pytest.fail("no trained Rasa model: run `python -m bot setup --for-tests` first")
    settings = isolated_settings(project, tmp_path_factory.mktemp("stack-var"))
    prepare_state(settings, Console(stderr=True))
    return settings


@pytest.fixture(scope="session")
def stack_supervisor(stack_settings: Settings) -> Iterator[Supervisor]:
    """Start the three services once per session; stop them at the end."""
    try:
        with started_stack(stack_settings, Console(stderr=True), show_progress=False) as running:
            yield running
    except ServiceFailedError as error:
        pytest.fail(f"{error}\n--- {error.log_path}\n{error.log_tail}")


@pytest.fixture(scope="session")
def running_stack(stack_supervisor: Supervisor, stack_settings: Settings) -> Settings:
    """Settings of the running stack (ports, token, database)."""
    return stack_settings


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright, one per test module."""
    if not CHROMIUM_PATH.exists():
        pytest.fail("Debian's chromium is missing: run `python -m bot setup --for-tests`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH),
            headless=True,
            args=list(CHROMIUM_HEADLESS_ARGS),
        )
        yield launched
        launched.close()
