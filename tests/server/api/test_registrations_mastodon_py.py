"""Mastodon.py's sign-up against a live Easel with mail on: ``create_account`` returns a
token that works once the mailed link is followed; ``email_resend_confirmation`` and
``instance_rules`` as the library calls them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mastodon import Mastodon, MastodonAPIError

from server.services import rules
from server.settings import Settings
from tests.server.api.live import OOB, LiveServer, live_server
from tests.server.smtp import Mailbox, link_in, mail_settings, mailbox

__all__ = ["mailbox"]  # fixtures

SCOPES = ["read", "write", "follow"]
ADDRESS = "hazel@example.com"


@pytest.fixture
def server(settings: Settings, mailbox: Mailbox) -> Iterator[LiveServer]:
    with live_server(mail_settings(settings, mailbox)) as live:
        yield live


def send_mail_now(server: LiveServer) -> None:
    """Run the due mail jobs here (the server's own workers, if any, may beat us to it)."""
    server.call(server.app.state.easel.runner.run_due(["default"]))


def test_create_account_then_confirm_by_the_mailed_link(server: LiveServer, mailbox: Mailbox) -> None:
    async def add_rule() -> None:
        async with server.app.state.easel.db.session() as session:
            await rules.add_rule(session, "Be kind")

    server.call(add_rule())
    client_id, client_secret = Mastodon.create_app("Mail test", scopes=SCOPES, redirect_uris=OOB,
                                                   api_base_url=server.base_url)
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=server.base_url,
                   version_check_mode="none", request_timeout=30)
    assert [rule["text"] for rule in api.instance_rules()] == ["Be kind"]
    assert api.create_account("hazel", "a long enough password", ADDRESS, agreement=True, scopes=SCOPES)
    with pytest.raises(MastodonAPIError, match="missing a confirmed e-mail address"):
        api.account_verify_credentials()

    send_mail_now(server)
    first = link_in(mailbox.wait_for(ADDRESS), "/auth/confirm", base=server.base_url)
    api.email_resend_confirmation()
    send_mail_now(server)
    second = link_in(mailbox.wait_for(ADDRESS, count=2), "/auth/confirm", base=server.base_url)
    with httpx.Client(base_url=server.base_url) as browser:
        assert browser.get(first).status_code == 422  # replaced by the resent one
        assert browser.get(second).status_code == 200
    assert api.account_verify_credentials()["username"] == "hazel"
