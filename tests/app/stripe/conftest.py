"""The Stripe tests' setup: the Stripe stand-in as STRIPE_API_BASE, a test key and two webhook secrets."""
from __future__ import annotations

import pytest

from tests.support.stripe import stripe_env


@pytest.fixture
def env(env, stripe_api):
    """The suite's environment plus the Stripe settings that point at the fake API."""
    return {**env, **stripe_env(stripe_api)}
