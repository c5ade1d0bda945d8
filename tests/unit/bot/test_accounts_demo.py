from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.accounts.demo import DEMO_BUSINESS_EMAIL, DEMO_CONSUMER_EMAIL, load_demo_data
from bot.accounts.models import DEFAULT_TEAM_SLUG, Account, Contact, Order, Team


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_demo_data_is_idempotent(session: Session) -> None:
    added = load_demo_data(session)
    counts = {model: _count(session, model) for model in (Team, Account, Contact, Order)}

    assert added == sum(counts.values())
    assert load_demo_data(session) == 0
    assert {model: _count(session, model) for model in counts} == counts


def test_demo_data_shape(session: Session) -> None:
    load_demo_data(session)
    accounts = session.scalars(select(Account)).all()
    consumers = [a for a in accounts if a.segment == "b2c"]
    businesses = [a for a in accounts if a.segment == "b2b"]

    assert session.scalars(select(Team).where(Team.slug == DEFAULT_TEAM_SLUG)).one().name == (
        "Customer Care"
    )
    assert len(consumers) >= 5
    assert len(businesses) == 3
    for account in consumers:
        assert account.number.startswith("ACC-1")
        assert account.tier in {"standard", "plus"}
        assert account.team_id is None
        assert len(account.contacts) == 1
        assert all(c.email.endswith("@example.com") for c in account.contacts)
        assert 1 <= len(account.orders) <= 3
    for account in businesses:
        assert account.number.startswith("ACC-2")
        assert account.tier in {"gold", "enterprise"}
        assert account.team is not None and account.team.slug != DEFAULT_TEAM_SLUG
        assert 2 <= len(account.contacts) <= 4
        assert account.orders
    assert len({a.team_id for a in businesses}) == 3
    for order in session.scalars(select(Order)):
        assert order.number.startswith("ORD-1") and len(order.number) == 10
        assert order.total_eur > 0
    emails = session.scalars(select(Contact.email)).all()
    assert all(email == email.lower() for email in emails)
    assert {DEMO_CONSUMER_EMAIL, DEMO_BUSINESS_EMAIL} <= set(emails)
