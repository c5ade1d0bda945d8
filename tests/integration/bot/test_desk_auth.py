"""Desk sign-in, two-step sign-in, sign-out and agent administration through the test client."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from bot.agents import service as agents
from bot.agents.models import Agent
from bot.web.auth import SESSION_COOKIE
from bot.web.routes.desk_auth import LOGIN_CSRF_COOKIE, safe_next
from tests.helpers.desk import (
    DeskUser,
    ensure_teams,
    form_csrf,
    make_user,
    post_login,
    sign_in,
)

TEAMS = ("customer-care", "key-accounts-dach")


@pytest.fixture
def factory(client: TestClient) -> sessionmaker[Session]:
    session_factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    ensure_teams(session_factory, *TEAMS)
    return session_factory


@pytest.fixture
def agent(factory: sessionmaker[Session]) -> DeskUser:
    return make_user(factory, email="ann.agent@example.com", teams=("customer-care",))


@pytest.fixture
def admin(factory: sessionmaker[Session]) -> DeskUser:
    return make_user(factory, email="ada.admin@example.com", role="admin", totp=True)


@pytest.fixture
def second_client(client: TestClient) -> Iterator[TestClient]:
    """Another browser on the same running app (its own cookies)."""
    yield TestClient(client.app)


def set_cookie_header(response: object, name: str) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    [header] = [h for h in headers if h.startswith(f"{name}=")]
    return str(header)


def error_text(html: str) -> str:
    match = re.search(r'<p id="sign-in-error" class="error" role="alert">([^<]*)</p>', html)
    assert match, html
    return html_lib.unescape(match.group(1))


def admin_page_csrf(client: TestClient) -> str:
    page = client.get("/desk/admin/agents")
    assert page.status_code == 200, page.text
    return form_csrf(page.text)


# -- sign-in ------------------------------------------------------------------------------------


def test_sign_in_page_is_an_accessible_form_with_its_own_csrf_cookie(client: TestClient) -> None:
    page = client.get("/desk/login")

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<label for="email">' in html and '<label for="password">' in html
    assert 'autocomplete="current-password"' in html
    assert "<script" not in html
    token = form_csrf(html)
    cookie = set_cookie_header(page, LOGIN_CSRF_COOKIE)
    assert token in cookie
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Path=/desk/login" in cookie


def test_agent_signs_in_and_gets_an_httponly_lax_session_cookie(
    client: TestClient, agent: DeskUser
) -> None:
    response = post_login(client, agent.email, agent.password)

    assert response.status_code == 303
    assert response.headers["location"] == "/desk"
    cookie = set_cookie_header(response, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # the public URL of this test app is http


def test_editor_lands_on_articles_and_a_safe_next_is_followed(
    client: TestClient, factory: sessionmaker[Session], second_client: TestClient
) -> None:
    editor = make_user(factory, email="eddie@example.com", role="editor")
    lead = make_user(factory, email="lee@example.com", role="lead", teams=TEAMS)

    assert post_login(client, editor.email, editor.password).headers["location"] == (
        "/desk/articles"
    )
    response = post_login(second_client, lead.email, lead.password, next_path="/desk/tickets/7?x=1")
    assert response.headers["location"] == "/desk/tickets/7?x=1"


@pytest.mark.parametrize(
    "hostile",
    [
        "//evil.example",
        "https://evil.example/desk",
        "/\\evil.example",
        "///evil.example",
        "javascript:alert(1)",
        "/desk\n/x",
        "/desk/login",
    ],
)
def test_open_redirect_next_is_ignored(client: TestClient, agent: DeskUser, hostile: str) -> None:
    response = post_login(client, agent.email, agent.password, next_path=hostile)

    assert response.status_code == 303
    assert response.headers["location"] == "/desk"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/desk/tickets/3", "/desk/tickets/3"),
        ("/desk?team=care", "/desk?team=care"),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("http://evil.example", None),
        ("desk", None),
        ("", None),
        (None, None),
        ("/desk/login/totp", None),
        ("/" + "a" * 3000, None),
    ],
)
def test_safe_next(value: str | None, expected: str | None) -> None:
    assert safe_next(value) == expected


def test_wrong_password_and_unknown_user_get_the_same_message(
    client: TestClient, agent: DeskUser
) -> None:
    wrong = post_login(client, agent.email, "not the password")
    unknown = post_login(client, "nobody@example.com", "not the password")

    assert wrong.status_code == unknown.status_code == 401
    assert error_text(wrong.text) == error_text(unknown.text) == agents.SIGN_IN_FAILED
    assert SESSION_COOKIE not in client.cookies
    assert 'aria-describedby="sign-in-error"' in wrong.text
    assert "not the password" not in wrong.text  # the password is never echoed


def test_sixth_failure_in_the_window_is_429_even_with_the_right_password(
    client: TestClient, agent: DeskUser
) -> None:
    for _ in range(5):
        assert post_login(client, agent.email, "wrong password!").status_code == 401

    response = post_login(client, agent.email, agent.password)

    assert response.status_code == 429
    assert error_text(response.text) == agents.TOO_MANY_ATTEMPTS
    assert SESSION_COOKIE not in client.cookies


def test_sign_in_without_or_with_a_wrong_csrf_token_is_403(
    client: TestClient, agent: DeskUser
) -> None:
    client.get("/desk/login")
    base = {"email": agent.email, "password": agent.password, "next": ""}

    missing = client.post("/desk/login", data=base, follow_redirects=False)
    wrong = client.post(
        "/desk/login", data={**base, "csrf_token": "x" * 32}, follow_redirects=False
    )

    assert missing.status_code == wrong.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def test_sign_in_from_a_foreign_origin_is_403(client: TestClient, agent: DeskUser) -> None:
    page = client.get("/desk/login")
    data = {"email": agent.email, "password": agent.password, "csrf_token": form_csrf(page.text)}

    response = client.post(
        "/desk/login",
        data=data,
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert SESSION_COOKIE not in client.cookies


# -- two-step sign-in --------------------------------------------------------------------------


def test_admin_cannot_reach_the_desk_without_totp(client: TestClient, admin: DeskUser) -> None:
    response = post_login(client, admin.email, admin.password)

    assert response.status_code == 303
    assert response.headers["location"] == "/desk/login/totp"
    assert SESSION_COOKIE in client.cookies
    blocked = client.get("/desk/admin/agents", follow_redirects=False)
    assert blocked.status_code == 303
    assert blocked.headers["location"] == "/desk/login?next=/desk/admin/agents"
    api = client.post("/desk/admin/agents", data={}, follow_redirects=False)
    assert api.status_code == 401


def test_wrong_totp_code_is_refused_and_the_right_one_completes_sign_in(
    client: TestClient, admin: DeskUser
) -> None:
    post_login(client, admin.email, admin.password, next_path="/desk/admin/agents")
    page = client.get("/desk/login/totp", params={"next": "/desk/admin/agents"})
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.text
    csrf = form_csrf(page.text)
    current = admin.code()
    wrong_code = f"{(int(current) + 1) % 1_000_000:06d}"

    wrong = client.post(
        "/desk/login/totp",
        data={"code": wrong_code, "csrf_token": csrf, "next": "/desk/admin/agents"},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert 'aria-invalid="true"' in wrong.text and "code-error" in wrong.text
    assert client.get("/desk/admin/agents", follow_redirects=False).status_code == 303

    malformed = client.post(
        "/desk/login/totp", data={"code": "12ab", "csrf_token": csrf}, follow_redirects=False
    )
    assert malformed.status_code == 400

    right = client.post(
        "/desk/login/totp",
        data={"code": admin.code(), "csrf_token": csrf, "next": "/desk/admin/agents"},
        follow_redirects=False,
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/desk/admin/agents"
    assert client.get("/desk/admin/agents").status_code == 200


def test_totp_post_without_the_session_csrf_token_is_403(
    client: TestClient, admin: DeskUser
) -> None:
    post_login(client, admin.email, admin.password)

    response = client.post("/desk/login/totp", data={"code": admin.code()}, follow_redirects=False)

    assert response.status_code == 403


def test_repeated_wrong_totp_codes_end_the_waiting_session(
    client: TestClient, admin: DeskUser
) -> None:
    post_login(client, admin.email, admin.password)
    csrf = form_csrf(client.get("/desk/login/totp").text)
    wrong = f"{(int(admin.code()) + 500_000) % 1_000_000:06d}"
    for _ in range(5):
        response = client.post(
            "/desk/login/totp", data={"code": wrong, "csrf_token": csrf}, follow_redirects=False
        )
        assert response.status_code == 401

    response = client.post(
        "/desk/login/totp", data={"code": admin.code(), "csrf_token": csrf}, follow_redirects=False
    )

    assert response.status_code == 429
    assert error_text(response.text) == agents.TOO_MANY_ATTEMPTS
    assert client.get("/desk/login/totp", follow_redirects=False).headers["location"] == (
        "/desk/login"
    )


def test_admin_without_a_key_enrols_at_first_sign_in(
    client: TestClient, factory: sessionmaker[Session]
) -> None:
    new_admin = make_user(factory, email="root@example.com", role="admin")
    assert post_login(client, new_admin.email, new_admin.password).headers["location"] == (
        "/desk/login/totp"
    )

    page = client.get("/desk/login/totp")
    assert page.status_code == 200
    assert "Set up your authenticator app" in page.text
    uri = re.search(r"otpauth://totp/[^<\s]+", page.text)
    assert uri is not None
    secret_match = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert secret_match is not None
    secret = secret_match.group(1).replace(" ", "")
    assert f"secret={secret}" in uri.group(0).replace("&amp;", "&")
    assert client.get("/desk/login/totp").text.count(secret_match.group(1)) == 1  # stable
    with factory() as session:
        assert session.get(Agent, new_admin.id).totp_secret is None  # nothing stored yet

    done = client.post(
        "/desk/login/totp",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": form_csrf(page.text)},
        follow_redirects=False,
    )

    assert done.status_code == 303
    assert client.get("/desk/admin/agents").status_code == 200
    with factory() as session:
        assert session.get(Agent, new_admin.id).totp_secret == secret


# -- sign-out ----------------------------------------------------------------------------------


def test_logout_without_csrf_is_403_and_with_it_ends_the_session(
    client: TestClient, admin: DeskUser
) -> None:
    sign_in(client, admin)
    csrf = admin_page_csrf(client)

    refused = client.post("/desk/logout", follow_redirects=False)
    assert refused.status_code == 403
    # A hostile token (non-ASCII, as a header) is refused too, not a server error.
    hostile = client.post(
        "/desk/logout", headers={"X-CSRF-Token": "é".encode("latin-1")}, follow_redirects=False
    )
    assert hostile.status_code == 403
    assert client.get("/desk/admin/agents", follow_redirects=False).status_code == 200

    done = client.post("/desk/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/desk/login"
    assert client.get("/desk/admin/agents", follow_redirects=False).status_code == 303


# -- administration ----------------------------------------------------------------------------


def test_an_agent_gets_403_on_the_admin_pages(client: TestClient, agent: DeskUser) -> None:
    sign_in(client, agent)

    assert client.get("/desk/admin/agents", follow_redirects=False).status_code == 403
    assert client.post("/desk/admin/agents", data={}, follow_redirects=False).status_code == 403


def test_admin_page_lists_agents_with_role_teams_and_status(
    client: TestClient, admin: DeskUser, agent: DeskUser
) -> None:
    sign_in(client, admin)

    page = client.get("/desk/admin/agents")

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert agent.email in page.text and admin.email in page.text
    assert "Customer Care" in page.text
    assert f'action="/desk/admin/agents/{agent.id}/deactivate"' in page.text
    assert f'action="/desk/admin/agents/{admin.id}/deactivate"' not in page.text  # not oneself
    assert '<label for="new-email">' in page.text


def test_admin_creates_an_agent_whose_one_time_password_works(
    client: TestClient, admin: DeskUser, second_client: TestClient
) -> None:
    sign_in(client, admin)
    csrf = admin_page_csrf(client)

    created = client.post(
        "/desk/admin/agents",
        data={
            "csrf_token": csrf,
            "email": "New.Person@Example.com",
            "name": "New Person",
            "role": "lead",
            "teams": ["customer-care", "key-accounts-dach"],
        },
    )

    assert created.status_code == 201, created.text
    password = re.search(r'<dt>Password</dt><dd><code class="secret">([^<]+)</code>', created.text)
    assert password is not None
    response = post_login(second_client, "new.person@example.com", password.group(1))
    assert response.status_code == 303 and response.headers["location"] == "/desk"


def test_create_form_errors_are_tied_to_their_fields(
    client: TestClient, admin: DeskUser, agent: DeskUser
) -> None:
    sign_in(client, admin)
    csrf = admin_page_csrf(client)

    response = client.post(
        "/desk/admin/agents",
        data={"csrf_token": csrf, "email": agent.email, "name": "", "role": "agent"},
    )

    assert response.status_code == 400
    html = response.text
    assert 'aria-describedby="new-email-error"' in html and 'id="new-email-error"' in html
    assert "There is already a desk account" in html
    assert 'id="new-name-error"' in html
    email_input = re.search(r'<input id="new-email"[^>]*>', html)
    assert email_input is not None and "autofocus" in email_input.group(0)  # first error


def test_admin_post_without_csrf_or_from_a_foreign_origin_is_403(
    client: TestClient, admin: DeskUser, agent: DeskUser
) -> None:
    sign_in(client, admin)
    csrf = admin_page_csrf(client)

    no_token = client.post(f"/desk/admin/agents/{agent.id}/deactivate")
    foreign = client.post(
        f"/desk/admin/agents/{agent.id}/deactivate",
        data={"csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )

    assert no_token.status_code == foreign.status_code == 403
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.get(Agent, agent.id).is_active


def test_deactivation_ends_the_agents_sessions_at_once(
    client: TestClient, admin: DeskUser, factory: sessionmaker[Session], second_client: TestClient
) -> None:
    other = make_user(factory, email="other.admin@example.com", role="admin", totp=True)
    sign_in(client, admin)
    sign_in(second_client, other)
    assert second_client.get("/desk/admin/agents", follow_redirects=False).status_code == 200

    done = client.post(
        f"/desk/admin/agents/{other.id}/deactivate", data={"csrf_token": admin_page_csrf(client)}
    )

    assert done.status_code == 200
    assert "their sessions have ended" in done.text
    next_request = second_client.get("/desk/admin/agents", follow_redirects=False)
    assert next_request.status_code == 303
    assert next_request.headers["location"].startswith("/desk/login")
    again = post_login(second_client, other.email, other.password)
    assert again.status_code == 401 and error_text(again.text) == agents.SIGN_IN_FAILED


def test_a_deactivated_account_is_reactivated_with_a_new_password_only(
    client: TestClient, admin: DeskUser, agent: DeskUser, second_client: TestClient
) -> None:
    sign_in(client, admin)
    client.post(
        f"/desk/admin/agents/{agent.id}/deactivate", data={"csrf_token": admin_page_csrf(client)}
    )
    page = client.get("/desk/admin/agents")
    assert f'action="/desk/admin/agents/{agent.id}/reactivate"' in page.text

    no_token = client.post(f"/desk/admin/agents/{agent.id}/reactivate")
    assert no_token.status_code == 403
    done = client.post(
        f"/desk/admin/agents/{agent.id}/reactivate", data={"csrf_token": admin_page_csrf(client)}
    )

    assert done.status_code == 200
    assert "the old one no longer works" in done.text
    new_password = re.search(r'<dt>Password</dt><dd><code class="secret">([^<]+)</code>', done.text)
    old_login = post_login(second_client, agent.email, agent.password)
    assert old_login.status_code == 401
    assert new_password is not None, done.text
    fresh = html_lib.unescape(new_password.group(1)).strip()
    assert post_login(second_client, agent.email, fresh).status_code == 303
    again = client.post(
        f"/desk/admin/agents/{agent.id}/reactivate", data={"csrf_token": admin_page_csrf(client)}
    )
    assert again.status_code == 400 and "already active" in again.text


def test_reset_password_shows_a_new_one_once_and_ends_sessions(
    client: TestClient, admin: DeskUser, factory: sessionmaker[Session], second_client: TestClient
) -> None:
    other = make_user(factory, email="other.admin@example.com", role="admin", totp=True)
    sign_in(client, admin)
    sign_in(second_client, other)

    done = client.post(
        f"/desk/admin/agents/{other.id}/reset-password",
        data={"csrf_token": admin_page_csrf(client)},
    )

    assert done.status_code == 200
    password = re.search(r'<dt>Password</dt><dd><code class="secret">([^<]+)</code>', done.text)
    assert password is not None
    assert second_client.get("/desk/admin/agents", follow_redirects=False).status_code == 303
    assert post_login(second_client, other.email, other.password).status_code == 401
    fresh = post_login(second_client, other.email, password.group(1))
    assert fresh.status_code == 303 and fresh.headers["location"] == "/desk/login/totp"
    assert password.group(1) not in client.get("/desk/admin/agents").text  # shown once


def test_admin_cannot_deactivate_or_reset_themselves(client: TestClient, admin: DeskUser) -> None:
    sign_in(client, admin)
    csrf = admin_page_csrf(client)

    deactivate = client.post(f"/desk/admin/agents/{admin.id}/deactivate", data={"csrf_token": csrf})
    reset = client.post(f"/desk/admin/agents/{admin.id}/reset-password", data={"csrf_token": csrf})

    assert deactivate.status_code == reset.status_code == 400
    assert client.get("/desk/admin/agents", follow_redirects=False).status_code == 200


def test_re_enrolling_totp_shows_the_key_once_and_sign_in_then_asks_for_it(
    client: TestClient, admin: DeskUser, agent: DeskUser, second_client: TestClient
) -> None:
    sign_in(client, admin)

    done = client.post(
        f"/desk/admin/agents/{agent.id}/totp", data={"csrf_token": admin_page_csrf(client)}
    )

    assert done.status_code == 200
    assert "otpauth://totp/" in done.text
    response = post_login(second_client, agent.email, agent.password)
    assert response.headers["location"] == "/desk/login/totp"


def test_unknown_agent_id_is_a_404_page(client: TestClient, admin: DeskUser) -> None:
    sign_in(client, admin)

    response = client.post(
        "/desk/admin/agents/9999/deactivate", data={"csrf_token": admin_page_csrf(client)}
    )

    assert response.status_code == 404
    assert "There is no such desk account." in response.text
