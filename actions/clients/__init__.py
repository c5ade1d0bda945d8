"""Typed clients for the services the actions talk to (the bot service's internal API)."""
