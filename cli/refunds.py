"""What `entitle refund telegram|stripe` says: the same words and exit code for the same case, whichever provider."""
from __future__ import annotations

import typer

from cli.output import complain, console


def report_refund(reference: str, user: int, *, refunded_now: str | None, already_refunded: bool, revoked: list,
                  renewal_canceled: bool | None, problems: list[str], provider: str, subscription: str | None = None) -> None:
    """Print what a refund did and exit 1 when the provider did not do everything asked.

    `refunded_now` describes a refund taken now (e.g. `75 XTR`), None when none was taken;
    a payment refunded before is not a failure: its grant is revoked once, never twice.
    """
    if refunded_now is not None:
        console.print(f"refunded {reference} to user {user} ({refunded_now})", highlight=False, soft_wrap=True)
    if already_refunded:
        console.print(f"already refunded: {reference} was refunded before", highlight=False, soft_wrap=True)
    for grant in revoked:
        console.print(f"revoked {grant.entitlement} from user {user} ({grant.reference})", highlight=False, soft_wrap=True)
    if not revoked and (refunded_now is not None or already_refunded):
        console.print("its grant was already revoked; nothing revoked twice", highlight=False, soft_wrap=True)
    if renewal_canceled:
        console.print(f"stopped the renewals of subscription {subscription}" if subscription else "stopped the subscription's renewals",
                      highlight=False, soft_wrap=True)
    for message in problems:
        complain(f"{provider}: {message}")  # the provider's words, printed as text
    if problems:
        raise typer.Exit(1)
