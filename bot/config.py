"""One settings object for every Concierge process, read from ``CONCIERGE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import constants

if TYPE_CHECKING:
    from knowledge.answering import AnswerPolicy


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``CONCIERGE_<FIELD>``.

    The defaults are the embedded set-up: SQLite files and the local index under
    ``var/``, every service on 127.0.0.1, no accounts, tokens or network needed.
    """

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", env_file=None, extra="ignore")

    project_root: Path = constants.PROJECT_ROOT
    var_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    database_url: str = ""
    articles_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    index_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    models_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    log_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    rasa_venv: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]
    attachments_dir: Path = Field(default=None, validate_default=False)  # type: ignore[assignment]

    host: str = constants.DEFAULT_HOST
    rasa_port: int = constants.DEFAULT_RASA_PORT
    action_port: int = constants.DEFAULT_ACTION_PORT
    web_port: int = constants.DEFAULT_WEB_PORT
    rasa_token: SecretStr | None = None
    rasa_timeout_seconds: float = 15.0
    # The bot service's internal API (used by the action server) requires this token.
    service_token: SecretStr | None = None
    # Signs attachment download links; unset: derived from service_token (set per run).
    attachment_signing_key: SecretStr | None = None
    # Where people reach the bot service; https makes desk cookies Secure.
    public_url: str = ""
    # Redis for pub/sub between bot-service replicas; empty: in-process delivery.
    redis_url: str = ""
    # TLS served by the bot service itself (uvicorn); both files or neither.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    desk_session_hours: float = Field(constants.DEFAULT_DESK_SESSION_HOURS, gt=0)
    login_max_failures: int = Field(constants.DEFAULT_LOGIN_MAX_FAILURES, ge=1)
    login_window_minutes: float = Field(constants.DEFAULT_LOGIN_WINDOW_MINUTES, gt=0)
    max_attachment_bytes: int = Field(constants.DEFAULT_MAX_ATTACHMENT_BYTES, ge=1)
    max_customer_attachments_per_conversation: int = Field(
        constants.DEFAULT_MAX_CUSTOMER_ATTACHMENTS_PER_CONVERSATION, ge=1
    )
    max_agent_reply_chars: int = Field(constants.DEFAULT_MAX_AGENT_REPLY_CHARS, ge=1)

    kb_answer_threshold: float = Field(constants.DEFAULT_KB_ANSWER_THRESHOLD, ge=0, le=1)
    kb_suggest_threshold: float = Field(constants.DEFAULT_KB_SUGGEST_THRESHOLD, ge=0, le=1)
    kb_top_k: int = Field(constants.DEFAULT_KB_TOP_K, ge=1, le=10)
    kb_answer_margin: float = Field(constants.DEFAULT_KB_ANSWER_MARGIN, ge=0, le=1)
    max_message_chars: int = Field(constants.DEFAULT_MAX_MESSAGE_CHARS, ge=1)
    # Knowledge editor: only revisions a lead approved are published (demo: off).
    kb_require_review: bool = False
    # One log line per customer turn with where its time went (bot/chat/timing.py); the
    # knowledge actions then report their own durations through Rasa (actions/timing.py).
    turn_timing_log: bool = False
    # Events of a session Rasa rebuilds per turn (BoundedSQLTrackerStore); 0: all of them.
    rasa_tracker_max_events: int = Field(constants.DEFAULT_RASA_TRACKER_MAX_EVENTS, ge=0)
    # Customer messages per conversation sent to Rasa per window (0: no limit); shared by
    # every replica through the app database (bot/chat/rate_limit.py).
    chat_rate_limit_messages: int = Field(constants.DEFAULT_CHAT_RATE_LIMIT_MESSAGES, ge=0)
    chat_rate_limit_window_seconds: float = Field(
        constants.DEFAULT_CHAT_RATE_LIMIT_WINDOW_SECONDS, gt=0
    )
    # A web chat socket that says no hello within this many seconds is closed (1008).
    chat_hello_timeout_seconds: float = Field(constants.DEFAULT_CHAT_HELLO_TIMEOUT_SECONDS, gt=0)
    # Run profiles (bot/ops/profiles.py): Rasa's lock store (Redis URL; empty: in memory,
    # one Rasa process), Sanic workers of Rasa (more than one needs the Redis lock store)
    # and of the action server, and whether `run` starts its own redis-server at
    # rasa_lock_store_url (loopback only).
    rasa_lock_store_url: str = ""
    rasa_workers: int = Field(1, ge=1, le=8)
    action_workers: int = Field(1, ge=1, le=8)
    manage_redis: bool = False

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        root = self.project_root
        if self.var_dir is None:
            self.var_dir = root / "var"
        derived = {
            "articles_dir": root / "knowledge" / "articles",
            "index_dir": self.var_dir / "index",
            "models_dir": self.var_dir / "models",
            "log_dir": self.var_dir / "logs",
            "rasa_venv": root / ".venv-rasa",
            "attachments_dir": self.var_dir / "attachments",
        }
        for name, default in derived.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'concierge.db'}"
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.web_port}"
        self.public_url = self.public_url.rstrip("/")
        if self.kb_suggest_threshold > self.kb_answer_threshold:
            raise ValueError("kb_suggest_threshold must not be above kb_answer_threshold")
        if self.rasa_workers > 1 and not self.rasa_lock_store_url:
            raise ValueError("CONCIERGE_RASA_WORKERS > 1 needs CONCIERGE_RASA_LOCK_STORE_URL")
        if self.manage_redis and not self.rasa_lock_store_url:
            raise ValueError("CONCIERGE_MANAGE_REDIS needs CONCIERGE_RASA_LOCK_STORE_URL")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("set both CONCIERGE_TLS_CERTFILE and _TLS_KEYFILE, or neither")
        return self

    @field_validator("rasa_token", "service_token", "attachment_signing_key")
    @classmethod
    def _reject_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().lower() in constants.PLACEHOLDER_SECRETS:
            raise ValueError("a CONCIERGE_*_TOKEN is a placeholder; set a real random token")
        return value

    def kb_answer_policy(self) -> AnswerPolicy:
        """The answer bands every part of the bot applies.

        The action server, ``kb search``, ``kb eval``, the editor's preview and the
        content-gaps page all take them from here.
        """
        from knowledge.answering import AnswerPolicy

        return AnswerPolicy(
            answer_threshold=self.kb_answer_threshold,
            suggest_threshold=self.kb_suggest_threshold,
            limit=self.kb_top_k,
            answer_margin=self.kb_answer_margin,
        )

    @property
    def secure_cookies(self) -> bool:
        """Whether desk cookies get the ``Secure`` flag (the public URL is https)."""
        return self.public_url.startswith("https://")

    @property
    def internal_api_url(self) -> str:
        """Base URL of the bot service's internal API, as the action server calls it."""
        return f"{self.web_url}/internal/v1"

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server's HTTP API and REST channel."""
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        """Webhook URL of the action server."""
        return f"http://{self.host}:{self.action_port}/webhook"

    @property
    def web_url(self) -> str:
        """Base URL of the bot service (web chat)."""
        return f"http://{self.host}:{self.web_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
