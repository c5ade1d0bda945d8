"""Fictional demo customers of "Kestrel Home & Office" (consumers and business clients).

``load_demo_data`` is idempotent: rows are matched by slug, account/order number and
e-mail, so running set-up twice adds nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Order, Segment, Team, Tier

logger = logging.getLogger(__name__)

# Known demo customers, for tests and the README ("Things you can ask").
DEMO_CONSUMER_EMAIL = "emma.clarke@example.com"
DEMO_CONSUMER_ACCOUNT = "ACC-10042"
DEMO_CONSUMER_ORDER = "ORD-100231"
DEMO_BUSINESS_EMAIL = "ingrid.halvorsen@fjord-architects.example"
DEMO_BUSINESS_ACCOUNT = "ACC-20001"
DEMO_BUSINESS_ORDER = "ORD-100120"
DEMO_BUSINESS_TEAM = "key-accounts-dach"
DEMO_EMAILS: dict[str, str] = {"b2c": DEMO_CONSUMER_EMAIL, "b2b": DEMO_BUSINESS_EMAIL}


@dataclass(frozen=True)
class _TeamSpec:
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class _OrderSpec:
    number: str
    status: str
    total_eur: str
    placed_at: dt.datetime


@dataclass(frozen=True)
class _AccountSpec:
    number: str
    name: str
    segment: Segment
    tier: Tier
    team_slug: str | None
    contacts: tuple[tuple[str, str, str | None], ...]  # name, email, phone
    orders: tuple[_OrderSpec, ...] = field(default_factory=tuple)


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=10, tzinfo=dt.UTC)


TEAMS: tuple[_TeamSpec, ...] = (
    _TeamSpec(
        DEFAULT_TEAM_SLUG,
        "Customer Care",
        "Consumer customers: orders, deliveries, returns and refunds.",
    ),
    _TeamSpec(
        "key-accounts-dach",
        "Key Accounts DACH",
        "Dedicated team for business clients in Germany, Austria and Switzerland.",
    ),
    _TeamSpec(
        "key-accounts-nordics",
        "Key Accounts Nordics",
        "Dedicated team for business clients in Scandinavia and Finland.",
    ),
    _TeamSpec(
        "education-public-sector",
        "Education & Public Sector",
        "Dedicated team for schools, universities and public bodies.",
    ),
)

ACCOUNTS: tuple[_AccountSpec, ...] = (
    _AccountSpec(
        DEMO_CONSUMER_ACCOUNT,
        "Emma Clarke",
        Segment.B2C,
        Tier.PLUS,
        None,
        (("Emma Clarke", DEMO_CONSUMER_EMAIL, "+44 20 7946 0142"),),
        (
            _OrderSpec(DEMO_CONSUMER_ORDER, "delivered", "249.90", _at("2026-09-14")),
            _OrderSpec("ORD-100377", "shipped", "89.50", _at("2026-11-02")),
        ),
    ),
    _AccountSpec(
        "ACC-10057",
        "Lukas Meyer",
        Segment.B2C,
        Tier.STANDARD,
        None,
        (("Lukas Meyer", "lukas.meyer@example.com", None),),
        (_OrderSpec("ORD-100412", "processing", "1299.00", _at("2026-11-10")),),
    ),
    _AccountSpec(
        "ACC-10063",
        "Sofia Rossi",
        Segment.B2C,
        Tier.PLUS,
        None,
        (("Sofia Rossi", "sofia.rossi@example.com", "+39 02 5550 1763"),),
        (
            _OrderSpec("ORD-100158", "delivered", "45.99", _at("2026-08-03")),
            _OrderSpec("ORD-100289", "returned", "179.00", _at("2026-10-01")),
            _OrderSpec("ORD-100455", "shipped", "329.00", _at("2026-11-12")),
        ),
    ),
    _AccountSpec(
        "ACC-10078",
        "Noah Jensen",
        Segment.B2C,
        Tier.STANDARD,
        None,
        (("Noah Jensen", "noah.jensen@example.com", None),),
        (_OrderSpec("ORD-100301", "cancelled", "59.90", _at("2026-10-05")),),
    ),
    _AccountSpec(
        "ACC-10091",
        "Aisha Khan",
        Segment.B2C,
        Tier.STANDARD,
        None,
        (("Aisha Khan", "aisha.khan@example.com", "+49 30 5557 0191"),),
        (_OrderSpec("ORD-100468", "processing", "899.00", _at("2026-11-15")),),
    ),
    _AccountSpec(
        DEMO_BUSINESS_ACCOUNT,
        "Fjord Architects GmbH",
        Segment.B2B,
        Tier.GOLD,
        DEMO_BUSINESS_TEAM,
        (
            ("Ingrid Halvorsen", DEMO_BUSINESS_EMAIL, "+49 89 5550 2001"),
            ("Matthias Berger", "matthias.berger@fjord-architects.example", "+49 89 5550 2002"),
            ("Lea Schmidt", "lea.schmidt@fjord-architects.example", None),
        ),
        (
            _OrderSpec(DEMO_BUSINESS_ORDER, "delivered", "12480.00", _at("2026-07-21")),
            _OrderSpec("ORD-100398", "shipped", "3260.50", _at("2026-11-04")),
        ),
    ),
    _AccountSpec(
        "ACC-20002",
        "Northwind Logistics AB",
        Segment.B2B,
        Tier.ENTERPRISE,
        "key-accounts-nordics",
        (
            ("Johan Lindqvist", "johan.lindqvist@northwind-logistics.example", "+46 8 555 200 21"),
            ("Sara Nilsson", "sara.nilsson@northwind-logistics.example", None),
            ("Erik Svensson", "erik.svensson@northwind-logistics.example", "+46 8 555 200 23"),
            ("Maja Holm", "maja.holm@northwind-logistics.example", None),
        ),
        (
            _OrderSpec("ORD-100205", "delivered", "48900.00", _at("2026-08-27")),
            _OrderSpec("ORD-100421", "processing", "7315.20", _at("2026-11-11")),
            _OrderSpec("ORD-100470", "shipped", "1980.00", _at("2026-11-16")),
        ),
    ),
    _AccountSpec(
        "ACC-20003",
        "Brightfield Academy Trust",
        Segment.B2B,
        Tier.GOLD,
        "education-public-sector",
        (
            ("Priya Patel", "priya.patel@brightfield-academy.example", "+44 161 555 0203"),
            ("Tom Hughes", "tom.hughes@brightfield-academy.example", None),
        ),
        (_OrderSpec("ORD-100344", "delivered", "15620.00", _at("2026-10-09")),),
    ),
)


def _ensure_teams(session: Session) -> tuple[dict[str, Team], int]:
    existing = {team.slug: team for team in session.scalars(select(Team))}
    added = 0
    for spec in TEAMS:
        if spec.slug not in existing:
            team = Team(slug=spec.slug, name=spec.name, description=spec.description)
            session.add(team)
            existing[spec.slug] = team
            added += 1
    session.flush()
    return existing, added


def _ensure_account(session: Session, spec: _AccountSpec, teams: dict[str, Team]) -> int:
    added = 0
    account = session.scalars(select(Account).where(Account.number == spec.number)).first()
    if account is None:
        team = teams[spec.team_slug] if spec.team_slug else None
        account = Account(
            number=spec.number,
            name=spec.name,
            segment=spec.segment.value,
            tier=spec.tier.value,
            team_id=team.id if team else None,
        )
        session.add(account)
        session.flush()
        added += 1
    for name, email, phone in spec.contacts:
        if (
            session.scalars(select(Contact.id).where(Contact.email == email.lower())).first()
            is None
        ):
            session.add(Contact(account_id=account.id, name=name, email=email.lower(), phone=phone))
            session.flush()  # keeps contact ids in listed order: the first is the primary
            added += 1
    for order in spec.orders:
        if session.scalars(select(Order.id).where(Order.number == order.number)).first() is None:
            session.add(
                Order(
                    number=order.number,
                    account_id=account.id,
                    status=order.status,
                    total_eur=Decimal(order.total_eur),
                    placed_at=order.placed_at,
                )
            )
            added += 1
    return added


def load_demo_data(session: Session) -> int:
    """Add the demo teams, accounts, contacts and orders that are not there yet.

    Also adds the desk's demo canned replies (:mod:`bot.handoff.demo`, logged there and
    not counted here).

    Args:
        session: The open session (committed here).

    Returns:
        How many teams, accounts, contacts and orders were added (0 when everything
        was already loaded).
    """
    from bot.handoff.demo import load_demo_canned_replies

    teams, added = _ensure_teams(session)
    for spec in ACCOUNTS:
        added += _ensure_account(session, spec, teams)
    load_demo_canned_replies(session)
    session.commit()
    logger.info("demo data loaded: %s new rows", added)
    return added


def seed_demo_database(database_url: str) -> int:
    """Load the demo data into an already migrated database at ``database_url``.

    Returns:
        How many rows were added (0 when they were all there already).
    """
    from bot.db.session import create_db_engine, create_session_factory

    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            return load_demo_data(session)
    finally:
        engine.dispose()
