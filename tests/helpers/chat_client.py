"""A minimal web-chat client over the bot service's websocket, for e2e tests."""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

import websockets

Frame = dict[str, Any]


class ChatClient:
    """One browser-like chat session: hello, then send messages and collect each turn's frames."""

    def __init__(self, web_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = web_url.replace("http://", "ws://") + "/ws/chat"
        self.token = token
        self.timeout = timeout
        self.history: list[Frame] = []
        self._socket: websockets.ClientConnection | None = None

    async def __aenter__(self) -> ChatClient:
        self._socket = await websockets.connect(self.url, max_size=2**22)
        await self._socket.send(json.dumps({"type": "hello", "token": self.token}))
        while True:
            frame = await self.receive()
            if frame["type"] == "session":
                self.token = frame["token"]
            elif frame["type"] == "history":
                self.history = frame["messages"]
                return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._socket is not None:
            await self._socket.close()

    async def receive(self) -> Frame:
        assert self._socket is not None
        raw = await asyncio.wait_for(self._socket.recv(), timeout=self.timeout)
        return dict(json.loads(raw))

    async def send_raw(self, data: str | bytes) -> None:
        assert self._socket is not None
        await self._socket.send(data)

    async def turn(self, frame: Frame) -> list[Frame]:
        """Send one client frame; return the messages and errors until typing goes off."""
        await self.send_raw(json.dumps(frame))
        return await self.replies()

    async def replies(self) -> list[Frame]:
        """Collect frames until the typing indicator is switched off (or an error arrives)."""
        collected: list[Frame] = []
        while True:
            frame = await self.receive()
            if frame["type"] == "typing" and frame.get("on") is False:
                return collected
            if frame["type"] == "error":
                collected.append(frame)
                return collected
            if frame["type"] == "message":
                collected.append(frame)

    async def say(self, text: str) -> list[Frame]:
        """Send a text message as the customer and return the replies."""
        return await self.turn({"type": "message", "text": text})
