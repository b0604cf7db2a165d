"""The one way a test delivers a provider's event: POST it to the app as the provider sends it, and let a worker run it.

The request goes through the real route (signature or secret token checked, the inbox row
written by `Runtime.accept`, its id sent over Redis) and a real Dramatiq worker runs the
handler, so a handler test also proves the wire and the hand-off. The test needs the
`client` and `worker` fixtures.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.models import Event, EventStatus
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Webhook:
    """A webhook request as the provider sends it: the route, the raw body and the headers."""

    provider: str
    path: str
    body: bytes
    headers: dict

    def post(self, client):
        """POST this request to the app through the Flask test client; the response."""
        return client.post(self.path, data=self.body, headers=self.headers)


def deliver(client, webhook: Webhook, timeout: float = 15.0) -> Event:
    """POST the webhook and wait until the worker has finished with the inbox row it made (no longer pending); the row."""
    response = webhook.post(client)
    assert response.status_code == 200, response.get_data(as_text=True)
    row = recorded_row(webhook.provider, response.get_json())

    def finished() -> Event | None:
        current = Event.get_by_id(row.id)
        return current if current.status != EventStatus.PENDING else None

    return wait_for(finished, timeout=timeout, message=f"{webhook.provider} {row.type} {row.external_id} handled")


def recorded_row(provider: str, answer: dict) -> Event:
    """The inbox row the route's answer names: Telegram's answer carries the row's id, Stripe's the event's."""
    if "event" in answer:
        return Event.get_by_id(answer["event"])
    if "id" in answer:
        return Event.get((Event.provider == provider) & (Event.external_id == answer["id"]))
    raise AssertionError(f"the app recorded nothing: {answer}")
