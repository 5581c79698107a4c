"""Instance rules: the short list a newcomer reads and accepts at sign-up.

Why it exists: Mastodon shows the server's rules (GET /api/v1/instance/rules, the v2
instance's ``rules``) and apps show them before registering; reports may cite them. The
admin adds and removes them with ``easel admin rules``. They are listed in ``position``
order (then by age); this module never reorders silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import InstanceRule
from server.services.errors import ValidationFailed, get_or_404

MAX_RULE_TEXT = 300
MAX_RULE_HINT = 2000


async def list_rules(session: AsyncSession) -> Sequence[InstanceRule]:
    return (await session.scalars(
        select(InstanceRule).order_by(InstanceRule.position, InstanceRule.id))).all()


async def add_rule(session: AsyncSession, text: str, hint: str = "") -> InstanceRule:
    """A new rule at the end of the list, committed; ValidationFailed for bad text."""
    text, hint = text.strip(), hint.strip()
    if not text:
        raise ValidationFailed("Text can't be blank")
    if len(text) > MAX_RULE_TEXT:
        raise ValidationFailed(f"Text is too long (maximum is {MAX_RULE_TEXT} characters)")
    if len(hint) > MAX_RULE_HINT:
        raise ValidationFailed(f"Hint is too long (maximum is {MAX_RULE_HINT} characters)")
    last = await session.scalar(select(func.max(InstanceRule.position)))
    rule = InstanceRule(text=text, hint=hint, position=(last or 0) + 1)
    session.add(rule)
    await session.commit()
    return rule


async def remove_rule(session: AsyncSession, rule_id: int) -> None:
    """Remove a rule, committed; NotFound when there is none."""
    rule = await get_or_404(session, InstanceRule, rule_id, "Rule not found")
    await session.delete(rule)
    await session.commit()

