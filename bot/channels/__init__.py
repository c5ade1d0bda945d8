"""Customer channels (web chat, Telegram).

Each channel calls the one channel-independent turn handler,
:class:`bot.chat.service.ChatService`.
"""
