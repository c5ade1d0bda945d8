"""Audit trail of customer identification, handoffs and (later) agent actions."""
