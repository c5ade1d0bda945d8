"""The real stack for end-to-end tests: trained Rasa, action server and bot service on 127.0.0.1.

Needs `python -m bot setup --for-tests` first (the README's test command runs it): the
trained model and Debian's chromium are prerequisites, not things a test builds.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from bot.config import Settings, get_settings
from bot.ops.doctor import check_model
from bot.ops.setup import build_knowledge_index, migrate_and_seed
from bot.ops.stack import stack_specs, with_run_token
from bot.ops.supervisor import ServiceFailedError, Supervisor


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a private stack: its own ports, database and index, the project's model."""
    project = get_settings()
    if not check_model(project).ok:
        pytest.fail("no trained Rasa model: run `python -m bot setup --for-tests` first")
    var_dir = tmp_path_factory.mktemp("stack-var")
    settings = Settings(
        var_dir=var_dir,
        models_dir=project.models_dir,
        rasa_port=free_port(),
        action_port=free_port(),
        web_port=free_port(),
    )
    console = Console(stderr=True)
    migrate_and_seed(settings, console, demo_data=True)
    build_knowledge_index(settings, console)
    return with_run_token(settings)


@pytest.fixture(scope="session")
def running_stack(stack_settings: Settings) -> Iterator[Settings]:
    """Start the three services, wait until healthy, stop them at the end of the session."""
    supervisor = Supervisor(Console(stderr=True))
    try:
        for spec in stack_specs(stack_settings):
            supervisor.start(spec)
        try:
            supervisor.wait_until_healthy(show_progress=False)
        except ServiceFailedError as error:
            pytest.fail(f"{error}\n--- {error.log_path}\n{error.log_tail}")
        yield stack_settings
    finally:
        supervisor.stop()


@pytest.fixture(scope="session")
def log_dir(stack_settings: Settings) -> Path:
    """Where the stack's processes write their logs."""
    return stack_settings.log_dir
