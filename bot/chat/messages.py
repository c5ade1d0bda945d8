"""Every sentence the bot service itself says to customers, in one place.

Bot answers come from Rasa (``utter_*`` in domain.yml); these are only the service's
own fallbacks when a message cannot be handled or Rasa cannot be reached.
"""

EMPTY_MESSAGE = "Please type a message and I'll do my best to help."
MESSAGE_TOO_LONG = (
    "Sorry — that message is too long for me. Could you send a shorter version "
    "(up to {max_chars} characters)?"
)
RASA_UNAVAILABLE = (
    "Sorry — I can't reach my answer service right now. Your message is saved; "
    "please try again in a minute."
)
NO_REPLY = (
    "Sorry — I couldn't finish answering that just now. Your message is saved; "
    "please try again in a minute."
)
FRAME_TOO_LARGE = "Sorry — that message is far too long for me. Could you send a shorter version?"
INVALID_FRAME = "Sorry — I couldn't read that message. Please type it again."
HELLO_FIRST = "Sorry — the chat isn't ready yet. Please reload the page."
UNEXPECTED_ERROR = "Sorry — something went wrong on our side. Please try again in a minute."
RATE_LIMITED = (
    "You're sending messages faster than I can answer them. Everything you sent is saved; "
    "please give me a moment before sending more."
)
RATING_INVALID = "Sorry — I couldn't record that rating. Please tap one of the stars again."
