"""Warm-up: load the embedding model and the live index before the first customer needs them.

``python -m bot run`` calls this action once the action server answers ``/health``, so the
first real question does not wait ~10 s for torch and the model to load.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.deps import get_knowledge_base

logger = logging.getLogger(__name__)

WARM_UP_ACTION_NAME = "action_concierge_warm_up"


class ActionConciergeWarmUp(Action):
    """Run one search so the encoder and the current index are loaded."""

    def name(self) -> str:
        """Return the action's name."""
        return WARM_UP_ACTION_NAME

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Search once; errors are logged, not raised (a missing index is reported later)."""
        started = time.monotonic()
        try:
            get_knowledge_base().search("warm up", 1)
        except Exception:
            logger.exception("warm-up search failed")
        logger.info("warm-up took %.1f s", time.monotonic() - started)
        return []
