"""Conversations, their messages and the browser tokens that open them."""
