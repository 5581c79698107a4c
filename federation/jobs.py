"""Federation's job kinds, imported by every process that runs jobs.

``federate`` (an Activity → its document and one Delivery per inbox) and ``deliver`` live
in :mod:`federation.outbox` and :mod:`federation.delivery`; ``process_inbox`` in
:mod:`federation.inbox.processing`. Importing this module registers them all, and the
outbox builders that live outside :mod:`federation.outbox` (:mod:`federation.reports`).
"""

from __future__ import annotations

import federation.delivery
import federation.inbox.processing
import federation.outbox
import federation.reports  # the Flag builder (registers with federation.outbox)

__all__ = ["federation"]
