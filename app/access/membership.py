"""Who may stay in a chat: the one rule removals, join requests and the audit all decide by."""
from __future__ import annotations

from datetime import datetime

from app.access import transitions
from app.plans import Catalogue


def entitlements_of_chat(catalogue: Catalogue, chat: int) -> list[str]:
    """The keys of every entitlement that lists `chat`."""
    return [spec.key for spec in catalogue.entitlements.values() if chat in spec.chats]


def keeping_entitlement(catalogue: Catalogue, user_id: int, chat: int, now: datetime | None = None) -> str | None:
    """An entitlement listing `chat` that the user (row id) holds now, or None: whoever holds one belongs in the chat."""
    for key in entitlements_of_chat(catalogue, chat):
        if transitions.holds(user_id, key, now):
            return key
    return None
