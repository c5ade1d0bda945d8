"""Named run profiles: how many workers each service gets, and whether Redis runs.

``default`` is what ``python -m bot run`` starts: one process per service, Rasa's lock
store in memory, SQLite. ``best`` is the fastest set-up measured on a 2-core machine
(``python -m bench.load --profile best``; see docs/operations.md and docs/benchmarks.md):
a project-managed Redis as Rasa's lock store (Rasa runs more than one worker only with
a lock store other than its in-memory one) and two Rasa workers. The bot service stays
one process with its in-process broker (Redis pub/sub is for several replicas).
"""

from __future__ import annotations

from typing import Any

from bot.config import Settings

PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "best": {"rasa_workers": 2, "action_workers": 1, "manage_redis": True},
}


def apply_profile(settings: Settings, name: str) -> Settings:
    """Return ``settings`` with profile ``name`` applied.

    A profile that manages Redis gets a free loopback port for it (unless
    ``rasa_lock_store_url`` is already set).

    Raises:
        ValueError: For an unknown profile name.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}")
    from bot.ops.stack import free_port

    update = dict(PROFILES[name])
    if update.get("manage_redis") and not settings.rasa_lock_store_url:
        update["rasa_lock_store_url"] = f"redis://{settings.host}:{free_port(settings.host)}/0"
    return settings.model_copy(update=update)
