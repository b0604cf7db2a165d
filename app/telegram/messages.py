"""Messages to people written in the inbox with the change they report, and sent by `send_message` after its commit."""
from __future__ import annotations

from app import inbox
from app.inbox import Context
from app.telegram import SOURCE


def write_message(context: Context, chat_id: int, text: str, *, key: str) -> None:
    """Write a message to send into the inbox, in the caller's transaction; `send_message` sends it after the commit.

    Its row is unique on `key`, so a payment handled twice writes one message; a send Telegram
    cannot take is tried again like any event, and never touches the change it reports.
    """
    send = context.send_handed_off
    recorded = inbox.record(SOURCE, key, "send_message", {"chat_id": chat_id, "text": text},
                            subject=chat_id if chat_id > 0 else None, handed_off=send is not None)
    event = recorded.event
    if recorded.created and event.dispatch == inbox.BORN_GENERATION:
        inbox.after_commit(lambda: send(event))
    elif recorded.should_enqueue and context.hand_off is not None:
        inbox.after_commit(lambda: context.hand_off(event.id))
