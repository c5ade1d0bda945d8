"""Teams, customer accounts, their contacts and orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, UTCDateTime, utcnow


class Segment(StrEnum):
    """Consumer or business customer."""

    B2C = "b2c"
    B2B = "b2b"


class Tier(StrEnum):
    """Service tier of an account."""

    STANDARD = "standard"
    PLUS = "plus"
    GOLD = "gold"
    ENTERPRISE = "enterprise"


DEFAULT_TEAM_SLUG = "customer-care"


class Team(Base):
    """A support team that handoffs are routed to."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # {"timezone": "Europe/Berlin", "days": {"mon": ["08:00", "20:00"], ...}}; None: always open.
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    def __repr__(self) -> str:
        return f"Team(id={self.id!r}, slug={self.slug!r})"


class Account(Base):
    """A customer account: a consumer household or a business client."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(8))
    tier: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), index=True, default=None
    )

    team: Mapped[Team | None] = relationship(lazy="joined")
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="account", order_by="Contact.id", lazy="selectin"
    )
    orders: Mapped[list[Order]] = relationship(
        back_populates="account", order_by="Order.id", lazy="select"
    )

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, number={self.number!r}, segment={self.segment!r})"


class Contact(Base):
    """A person who may talk to support on behalf of an account."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    phone: Mapped[str | None] = mapped_column(String(40), default=None)

    account: Mapped[Account] = relationship(back_populates="contacts", lazy="joined")

    def __repr__(self) -> str:
        return f"Contact(id={self.id!r}, account_id={self.account_id!r})"


class Order(Base):
    """An order placed by an account."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(32))
    total_eur: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    account: Mapped[Account] = relationship(back_populates="orders")

    def __repr__(self) -> str:
        return f"Order(id={self.id!r}, number={self.number!r}, status={self.status!r})"
