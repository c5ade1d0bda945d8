"""Concierge's customer-facing service: channels, handoff, accounts and the CLI."""
