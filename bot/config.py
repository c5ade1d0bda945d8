"""One settings object for every Concierge process, read from ``CONCIERGE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import constants


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

    host: str = constants.DEFAULT_HOST
    rasa_port: int = constants.DEFAULT_RASA_PORT
    action_port: int = constants.DEFAULT_ACTION_PORT
    web_port: int = constants.DEFAULT_WEB_PORT
    rasa_token: SecretStr | None = None
    rasa_timeout_seconds: float = 15.0

    kb_answer_threshold: float = Field(constants.DEFAULT_KB_ANSWER_THRESHOLD, ge=0, le=1)
    kb_suggest_threshold: float = Field(constants.DEFAULT_KB_SUGGEST_THRESHOLD, ge=0, le=1)
    kb_top_k: int = Field(constants.DEFAULT_KB_TOP_K, ge=1, le=10)
    max_message_chars: int = Field(constants.DEFAULT_MAX_MESSAGE_CHARS, ge=1)

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
        }
        for name, default in derived.items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'concierge.db'}"
        if self.kb_suggest_threshold > self.kb_answer_threshold:
            raise ValueError("kb_suggest_threshold must not be above kb_answer_threshold")
        return self

    @field_validator("rasa_token")
    @classmethod
    def _reject_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().lower() in constants.PLACEHOLDER_SECRETS:
            raise ValueError("CONCIERGE_RASA_TOKEN is a placeholder; set a real random token")
        return value

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
