"""Defaults shared by the settings object and the command-line tools."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_HOST = "127.0.0.1"
DEFAULT_RASA_PORT = 5005
DEFAULT_ACTION_PORT = 5055
DEFAULT_WEB_PORT = 8000

# Knowledge answer bands (cosine similarity of normalised MiniLM embeddings; the head
# re-ranks but the score stays the cosine). Chosen on the demo knowledge base's val
# questions through the bot's own decision (bench/demo_kb_quality.py, docs/benchmarks.md):
# the highest right-article-first rate with at most 3 % of in-domain questions answered
# with a wrong article and no out-of-domain question answered. An answer must also lead
# the next article by the margin; a closer race is offered as suggestions.
# (CLINC150 val had chosen 0.52 / 0.45 for answering as often as possible.)
DEFAULT_KB_ANSWER_THRESHOLD = 0.72
DEFAULT_KB_SUGGEST_THRESHOLD = 0.40
DEFAULT_KB_ANSWER_MARGIN = 0.03
DEFAULT_KB_TOP_K = 3

# Longest customer message forwarded to Rasa; longer ones are stored and politely refused.
DEFAULT_MAX_MESSAGE_CHARS = 2000

# Events of a conversation's session that Rasa gets per turn (rasa_addons/tracker_store.py):
# about ten turns of knowledge questions, beyond the policies' max_history and the
# handoff context's ten turns. 0: Rasa's own SQL tracker store (the whole session).
DEFAULT_RASA_TRACKER_MAX_EVENTS = 100

# Customer messages per conversation sent to Rasa in any window (bot/chat/rate_limit.py):
# a person types far slower; a burst beyond it is stored and politely not answered.
DEFAULT_CHAT_RATE_LIMIT_MESSAGES = 10
DEFAULT_CHAT_RATE_LIMIT_WINDOW_SECONDS = 10.0
DEFAULT_CHAT_HELLO_TIMEOUT_SECONDS = 30.0

# Agent desk.
DEFAULT_DESK_SESSION_HOURS = 12.0
DEFAULT_LOGIN_MAX_FAILURES = 5  # per e-mail and per client address, in the window below
DEFAULT_LOGIN_WINDOW_MINUTES = 15.0
DEFAULT_MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
# Files one customer may upload into one conversation (bounds the disk one chat can fill).
DEFAULT_MAX_CUSTOMER_ATTACHMENTS_PER_CONVERSATION = 20
DEFAULT_MAX_AGENT_REPLY_CHARS = 5000
ALLOWED_ATTACHMENT_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf"})

EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# Secrets that must never be used as real values.
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "secret", "password", "token", ""})
