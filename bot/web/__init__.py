"""The bot service's web side: chat page, websocket, article pages and health checks."""
