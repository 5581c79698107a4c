"""Federation's job kinds, imported by every process that runs jobs.

``federate`` (an Activity → its document and one Delivery per inbox) and ``deliver`` live
in :mod:`federation.outbox` and :mod:`federation.delivery`; ``process_inbox`` in
:mod:`federation.inbox.processing`; ``process_import`` in :mod:`federation.imports`;
``fetch_link_card`` in :mod:`federation.link_cards`; ``web_push`` in :mod:`federation.web_push`.
Importing this module registers them all, and the outbox builders that live outside
:mod:`federation.outbox` (:mod:`federation.reports`, :mod:`federation.moves`,
:mod:`federation.votes`).
"""

from __future__ import annotations

import federation.delivery
import federation.imports  # process_import (account imports)
import federation.inbox.processing
import federation.link_cards  # fetch_link_card (link preview cards)
import federation.media_cache  # cache_remote_media (the remote media cache)
import federation.moves  # the Move builder (registers with federation.outbox)
import federation.outbox
import federation.reports  # the Flag builder (registers with federation.outbox)
import federation.votes  # a local vote on a remote poll (registers with federation.outbox)
import federation.web_push  # web_push (Web Push notifications)

__all__ = ["federation"]
