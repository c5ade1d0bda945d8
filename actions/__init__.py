"""Concierge custom actions, served by the Rasa SDK action server.

Usage:
    CONCIERGE_VAR_DIR=var SANIC_HOST=127.0.0.1 python -m rasa_sdk --actions actions --port 5055

Modules are split by concern: ``knowledge`` (answers from the help articles),
``handoff`` (queue for a person), ``identity`` (who the customer is), ``feedback``
(was an answer helpful?), ``parsing`` (spaCy identifier extraction) and ``deps`` (lazy,
process-wide knowledge base and database session factory). Importing this package
does no I/O.
"""
