"""Fixtures of the attack suites: the inbox's fake fediverse and app (remote carol on
remote.example, dave on other.example, alice's instance with no queue workers), shared
from tests/federation/inbox/conftest.py so every attack runs against the real endpoints."""

from tests.federation.inbox.conftest import (  # noqa: F401 - fixtures re-exported
    app_db,
    fediverse,
    inbox_app,
    remote_carol,
    remote_dave,
)
