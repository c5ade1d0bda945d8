"""Shared builders and fakes for the test suite."""
