"""Reconciliation with the providers' own ledgers: what a webhook never delivered is recorded into the inbox, once.

`telegram` reads `getStarTransactions`, `stripe` reads `GET /v1/events`; both record under the
external ids the webhooks use, so a late webhook after a reconciliation (or a reconciliation after
the webhook) is a duplicate and grants nothing twice. `runs` keeps the per-provider lease, cursor
and last outcome.
"""
