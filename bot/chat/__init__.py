"""Channel-independent handling of customer turns (web chat now, Telegram later)."""
