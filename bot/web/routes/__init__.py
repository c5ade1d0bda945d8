"""One router per resource: the chat (page, API, websocket), articles and health."""
