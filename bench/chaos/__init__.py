"""Fault scenarios (`make chaos`): each ends by counting what was accepted, granted, doubled and lost."""
