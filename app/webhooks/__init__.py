"""Outgoing webhooks to the operator's backend: endpoints, the transactional outbox, signing and delivery."""
