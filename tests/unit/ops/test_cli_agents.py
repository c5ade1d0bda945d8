"""``python -m bot agents``: add, list, deactivate, reset-password, enroll-totp."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.accounts.demo import seed_demo_database
from bot.agents import service as agents
from bot.agents.cli import ROLES
from bot.agents.models import Role
from bot.cli import create_argument_parser, main
from bot.config import get_settings
from bot.db.session import create_db_engine, create_session_factory, upgrade_database


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'var' / 'concierge.db'}"
    upgrade_database(url)
    seed_demo_database(url)  # the teams
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def check_password(database_url: str, email: str, password: str) -> bool:
    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            agent = agents.agent_by_email(session, email)
            assert agent is not None
            return agents.password_hasher().verify(password, agent.password_hash)
    finally:
        engine.dispose()


def printed_once(output: str, label: str) -> str:
    matches = re.findall(rf"{label} \(shown once, copy it now\): (\S.*)", output)
    assert len(matches) == 1, output
    return str(matches[0]).strip()


def test_the_cli_roles_are_the_model_roles() -> None:
    assert tuple(role.value for role in Role) == ROLES


def test_add_generates_a_password_and_prints_it_once(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "agents", "add", "--email", "Nia@Example.com", "--name", "Nia Lee",
            "--role", "lead", "--team", "customer-care", "--team", "key-accounts-dach",
        ]
    )  # fmt: skip

    output = capsys.readouterr().out
    assert code == 0
    password = printed_once(output, "Password")
    assert check_password(database_url, "nia@example.com", password)
    assert "customer-care, key-accounts-dach" in output


def test_add_reads_the_password_from_stdin(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("my own long password\n"))

    code = main(
        ["agents", "add", "--email", "a@example.com", "--name", "A", "--role", "editor",
         "--password-stdin"]
    )  # fmt: skip

    output = capsys.readouterr().out
    assert code == 0
    assert "shown once" not in output and "my own long password" not in output
    assert check_password(database_url, "a@example.com", "my own long password")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "no-such-team"], "Unknown team: no-such-team."),
        (["--password-stdin"], "at least 10 characters"),
    ],
)
def test_add_errors_exit_non_zero_with_the_message(
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))

    code = main(["agents", "add", "--email", "b@example.com", "--name", "B", "--role", "agent",
                 *argv])  # fmt: skip

    assert code == 1
    assert message in capsys.readouterr().out


def test_a_taken_email_and_an_unknown_role_are_refused(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["agents", "add", "--email", "c@example.com", "--name", "C", "--role", "agent"]
    assert main(argv) == 0
    capsys.readouterr()

    assert main(argv) == 1
    assert "There is already a desk account for c@example.com." in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["agents", "add", "--email", "d@example.com", "--name", "D", "--role", "root"])
    assert exited.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_list_deactivate_reset_and_enroll(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["agents", "add", "--email", "e@example.com", "--name", "Eve", "--role", "admin"])
    capsys.readouterr()

    assert main(["agents", "list"]) == 0
    listed = capsys.readouterr().out
    assert "e@example.com" in listed and "admin" in listed and "active" in listed

    assert main(["agents", "reset-password", "E@example.com"]) == 0
    new_password = printed_once(capsys.readouterr().out, "New password")
    assert check_password(database_url, "e@example.com", new_password)

    assert main(["agents", "enroll-totp", "e@example.com"]) == 0
    enrolled = capsys.readouterr().out
    assert re.fullmatch(r"[A-Z2-7 ]+", printed_once(enrolled, "TOTP key"))
    assert printed_once(enrolled, "Setup link").startswith("otpauth://totp/")

    assert main(["agents", "deactivate", "e@example.com"]) == 0
    assert "their sessions have ended" in capsys.readouterr().out
    assert main(["agents", "list"]) == 0
    assert "deactivated" in capsys.readouterr().out

    assert main(["agents", "reactivate", "e@example.com"]) == 0
    reactivated = capsys.readouterr().out
    assert "the old password no longer works" in reactivated
    fresh = printed_once(reactivated, "New password")
    assert fresh != new_password
    assert check_password(database_url, "e@example.com", fresh)
    assert not check_password(database_url, "e@example.com", new_password)
    assert main(["agents", "list"]) == 0
    assert "deactivated" not in capsys.readouterr().out


def test_an_unknown_email_exits_1(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("deactivate", "reset-password", "enroll-totp"):
        assert main(["agents", action, "ghost@example.com"]) == 1
        assert "There is no desk account for ghost@example.com." in capsys.readouterr().out


def test_an_unmigrated_database_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        assert main(["agents", "list"]) == 1
    finally:
        get_settings.cache_clear()

    assert "python -m bot setup" in capsys.readouterr().out


def test_help_names_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        create_argument_parser().parse_args(["agents", "--help"])

    text = capsys.readouterr().out
    for action in ("add", "list", "deactivate", "reset-password", "enroll-totp"):
        assert action in text
