"""Customer accounts, contacts, orders and teams (B2C and B2B)."""
