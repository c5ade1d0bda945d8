"""Three fixes for Rasa 3.6 work that is repeated on every turn for the same result.

Both keep Rasa's behaviour and error messages; they are installed by the launcher
(``python -m rasa_addons run``, see :mod:`rasa_addons.__main__`), before Rasa starts:

* **Action server responses** are validated against a JSON schema on every custom
  action; ``jsonschema.validate`` first re-checks the schema itself against its
  meta-schema (large: it holds every event type), which costs more than the rest of
  the turn's Rasa work together. The schema is checked once here and the validator
  kept.
* **Event classes** are looked up by walking every ``Event`` subclass for each event
  deserialised (the action server's events, the tracker store's rows); here the class
  found for a type name is remembered. Unknown names still take Rasa's own path.
* **Connections to the action server** are opened and closed for every action call
  (a new ``aiohttp.ClientSession`` per request); here each endpoint keeps one session
  per event loop, so connections are kept alive and reused.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

_installed = False


def install() -> None:
    """Install the fixes (idempotent)."""
    global _installed
    if _installed:
        return
    _validate_action_responses_with_one_validator()
    _remember_event_classes()
    _keep_endpoint_sessions()
    _installed = True
    logger.debug("Concierge Rasa speed-ups installed")


def _validate_action_responses_with_one_validator() -> None:
    from jsonschema import ValidationError, exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)  # once, instead of on every action call
    validator = validator_class(schema)

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = exceptions.best_match(validator.iter_errors(result))
        if error is None:
            return True
        if isinstance(error, ValidationError):  # the same message as Rasa's own
            error.message += (
                ". Failed to validate Action server response from API, "
                "make sure your response from the Action endpoint is valid. "
                "For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
        raise error

    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]


def _remember_event_classes() -> None:
    from rasa.shared.core.events import Event

    resolve = Event.resolve_by_type
    known: dict[str, Any] = {}

    def resolve_by_type(type_name: str, default: Any = None) -> Any:
        found = known.get(type_name)
        if found is not None:
            return found
        found = resolve(type_name, default)
        if found is not None and getattr(found, "type_name", None) == type_name:
            known[type_name] = found
        return found

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]


class _KeptSession:
    """``async with`` over a kept ``aiohttp.ClientSession`` that does not close it."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def __aenter__(self) -> Any:
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _keep_endpoint_sessions() -> None:
    import asyncio

    from rasa.utils.endpoints import EndpointConfig

    new_session = EndpointConfig.session
    # (endpoint, loop) ids -> (endpoint, session); holding the endpoint keeps its id unique.
    kept: dict[tuple[int, int], tuple[EndpointConfig, Any]] = {}

    def session(self: EndpointConfig) -> Any:
        key = (id(self), id(asyncio.get_running_loop()))
        entry = kept.get(key)
        if entry is None or entry[1].closed:
            entry = kept[key] = (self, new_session(self))
        return _KeptSession(entry[1])

    EndpointConfig.session = session  # type: ignore[method-assign]
