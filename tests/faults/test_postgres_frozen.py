"""Given a real ``easel serve`` on a PostgreSQL that stops answering under load (every
process SIGSTOPped: the port still accepts, open connections stay open, nothing replies —
a paused VM, a stalled disk, packets dropped), and then answers again, I expect:

- every request answered within a bound set by ``EASEL_DATABASE_TIMEOUT``, never a hang
  that lasts as long as the freeze: 503 with a JSON ``{"error": ...}`` and ``Retry-After``;
- reads refused the same way while it lasts, the health check reporting it;
- no acknowledged write lost, and the same process writing again once it answers.

The stopped-and-restarted case (connections cut, nothing listening) is
``test_postgres_restart``, whose clients and checks this shares.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import ThrowawayPostgres, wait_for
from tests.faults.test_postgres_restart import (
    PHASE_TIMEOUT,
    WRITERS,
    Load,
    logs,
    poster,
    serving,
    stored_texts,
)

pytestmark = pytest.mark.slow

TIMEOUT = 2.0  # EASEL_DATABASE_TIMEOUT for the server under test
# A request may meet a stuck statement, then a stuck ping and a stuck connection attempt
# before it is refused: a few timeouts, and nowhere near the freeze's length.
ANSWER_BOUND = 4 * TIMEOUT + 4


async def test_a_frozen_postgres_costs_requests_a_503_within_the_timeout_not_a_hang(
    throwaway_postgres: ThrowawayPostgres, tmp_path: Path,
) -> None:
    with serving(throwaway_postgres, tmp_path, {"EASEL_DATABASE_TIMEOUT": str(TIMEOUT)}) as served:
        process, settings, log, _env = served
        account_id, token = await poster(settings)
        load = Load(base_url=settings.base_url, token=token)
        writers = load.start()
        acknowledged = load.acknowledged

        def context() -> str:
            return logs(log, throwaway_postgres)

        reads: list[tuple[str, int, float, str]] = []
        frozen = False
        try:
            await asyncio.to_thread(wait_for, lambda: acknowledged() >= 20,
                                    "writes before the freeze", PHASE_TIMEOUT)
            throwaway_postgres.freeze()
            frozen = True
            frozen_at = time.monotonic()
            before = load.count(lambda a: a.status_code != 200)
            await asyncio.to_thread(
                wait_for, lambda: load.count(lambda a: a.status_code != 200) >= before + 2 * WRITERS,
                "the writers to be refused", PHASE_TIMEOUT)
            async with httpx.AsyncClient(base_url=settings.base_url, timeout=ANSWER_BOUND * 2,
                                         headers={"Authorization": f"Bearer {token}"}) as http:
                for path in ("/api/v1/timelines/home", "/api/v1/accounts/verify_credentials",
                             "/health"):
                    started = time.monotonic()
                    answer = await http.get(path)
                    reads.append((path, answer.status_code, time.monotonic() - started,
                                  answer.headers.get("retry-after", "")))
            freeze_lasted = time.monotonic() - frozen_at
            throwaway_postgres.thaw()
            frozen = False
            after = acknowledged()
            await asyncio.to_thread(wait_for, lambda: acknowledged() >= after + 20,
                                    "writes after PostgreSQL answered again", PHASE_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{context()}") from None
        finally:
            if frozen:
                throwaway_postgres.thaw()
            load.stop.set()
            for writer in writers:
                await asyncio.to_thread(writer.join, ANSWER_BOUND * 3)
        assert process.poll() is None, "easel serve died" + context()

    attempts = list(load.attempts)
    assert [a for a in attempts if a.status_code is None] == [], context()
    slow = [(a.text, a.status_code, round(a.seconds, 1)) for a in attempts if a.seconds > ANSWER_BOUND]
    assert slow == [], f"{slow}{context()}"
    assert freeze_lasted > ANSWER_BOUND  # the bound is the timeout's doing, not a short freeze
    refused = [a for a in attempts if a.status_code != 200]
    assert len(refused) >= 2 * WRITERS
    wrong = [a for a in refused if a.status_code != 503 or "application/json" not in a.content_type
             or '"error"' not in a.body]
    assert wrong == [], f"{wrong[:5]}{context()}"
    for path, status_code, seconds, retry_after in reads:
        assert status_code == 503 and seconds <= ANSWER_BOUND, (path, status_code, seconds)
        if path != "/health":
            assert retry_after == "5", path
    ok = [a for a in attempts if a.status_code == 200]
    stored = await stored_texts(settings, account_id)
    assert {a.text for a in ok} <= stored, sorted({a.text for a in ok} - stored)
