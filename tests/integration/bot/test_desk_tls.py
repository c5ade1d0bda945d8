"""Production profile over TLS: the real bot service (``python -m bot web``) behind uvicorn's TLS.

The public URL is https, so the desk's cookies must carry ``Secure`` as well as
``HttpOnly`` and ``SameSite=Lax``. The certificate is a throwaway self-signed one made
here with ``cryptography``; the client trusts exactly that certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.accounts.demo import seed_demo_database
from bot.config import Settings
from bot.db.session import create_db_engine, create_session_factory, upgrade_database
from bot.ops.setup import prepare_directories
from bot.ops.stack import free_port, web_spec
from bot.web.auth import SESSION_COOKIE
from bot.web.routes.desk_auth import LOGIN_CSRF_COOKIE
from tests.helpers.desk import DeskUser, form_csrf, make_user, post_login

STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class TlsService:
    public_url: str
    tls: ssl.SSLContext
    admin: DeskUser
    log_path: Path


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A one-day certificate for 127.0.0.1 and localhost, and its private key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsService]:
    """The bot service on https://127.0.0.1:PORT with its own database and an admin."""
    var_dir = tmp_path_factory.mktemp("tls-var")
    cert, key = write_self_signed_certificate(var_dir)
    port = free_port()
    public_url = f"https://127.0.0.1:{port}"
    settings = Settings(
        var_dir=var_dir,
        database_url=f"sqlite:///{var_dir / 'concierge.db'}",
        web_port=port,
        public_url=public_url,
        tls_certfile=cert,
        tls_keyfile=key,
    )
    assert settings.secure_cookies
    prepare_directories(settings)
    upgrade_database(settings.database_url)
    seed_demo_database(settings.database_url)  # teams only matter for the agents
    engine = create_db_engine(settings.database_url)
    try:
        admin = make_user(
            create_session_factory(engine), email="tls.admin@example.com", role="admin", totp=True
        )
    finally:
        engine.dispose()

    spec = web_spec(settings)
    tls = ssl.create_default_context(cafile=str(cert))
    with spec.log_path.open("wb") as log:
        process = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"bot service exited {process.returncode}:\n{_log_tail(spec.log_path)}")
            try:
                if httpx.get(f"{public_url}/health", verify=tls, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no https health after {STARTUP_TIMEOUT}s:\n{_log_tail(spec.log_path)}"
                )
            time.sleep(0.25)
        yield TlsService(public_url, tls, admin, spec.log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def cookie_header(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


def test_sign_in_over_https_sets_secure_httponly_lax_session_cookie(
    tls_service: TlsService,
) -> None:
    with httpx.Client(
        base_url=tls_service.public_url,
        verify=tls_service.tls,
        headers={"Origin": tls_service.public_url},  # as a browser sends on a form POST
        timeout=30.0,
    ) as browser:
        login_page = browser.get("/desk/login")
        login_cookie = cookie_header(login_page, LOGIN_CSRF_COOKIE)
        assert "Secure" in login_cookie and "HttpOnly" in login_cookie

        response = post_login(browser, tls_service.admin.email, tls_service.admin.password)

        assert response.status_code == 303, response.text
        session_cookie = cookie_header(response, SESSION_COOKIE)
        attributes = {part.strip().lower() for part in session_cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes

        page = browser.get("/desk/login/totp")
        done = browser.post(
            "/desk/login/totp",
            data={"code": tls_service.admin.code(), "csrf_token": form_csrf(page.text)},
        )
        assert done.status_code == 303, done.text
        admin_page = browser.get("/desk/admin/agents")
        assert admin_page.status_code == 200
        assert tls_service.admin.email in admin_page.text


def test_plain_http_is_not_served_on_the_tls_port(tls_service: TlsService) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_service.public_url.replace("https://", "http://") + "/health", timeout=5)


def test_tls_settings_come_in_pairs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CONCIERGE_TLS_CERTFILE"):
        Settings(var_dir=tmp_path, tls_certfile=tmp_path / "cert.pem")
    settings = Settings(var_dir=tmp_path, public_url="https://desk.example/")
    assert settings.secure_cookies and settings.public_url == "https://desk.example"
