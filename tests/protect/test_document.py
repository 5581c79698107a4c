"""The protection document's verification keys: set with the protection, replaced by a
report, dropped when a new one is pending, shown to the owner (no torch needed)."""

from __future__ import annotations

from typing import Any

from protect import document as doc
from server.models import MediaAttachment, ProtectionState

THRESHOLDS = {"ratio_holds": 1.5, "retention_holds": 0.5, "ratio_defeated": 1.2,
              "retention_defeated": 0.2}


def report(verdict: str) -> dict[str, Any]:
    """What ``protect.verify.report`` returns, reduced to its keys."""
    return {"check": "full", "budget": {"linf": 3, "psnr": 40.0, "ssim": 0.99},
            "transforms": {"identity": {"verdict": verdict, "ratio": 2.0, "retention": 1.0}},
            "verdict": verdict, "summary": f"{verdict}.", "models": ["vae"], "resolution": [8, 8],
            "size": [8, 8], "battery": ["identity"], "untested": ["diffusion"],
            "thresholds": THRESHOLDS}


def test_a_protected_document_waits_for_its_report_and_an_unprotected_one_has_none() -> None:
    protected = doc.document(ProtectionState.PROTECTED, models=["vae"], strength="default")
    assert doc.verification(protected) == doc.VERIFICATION_PENDING
    unprotected = doc.document(ProtectionState.UNPROTECTED, reason=doc.NO_MODEL_REASON)
    assert doc.verification(unprotected) == doc.VERIFICATION_SKIPPED
    assert unprotected["verification_reason"] == doc.NOTHING_TO_VERIFY
    assert doc.verification(doc.document(ProtectionState.PENDING)) is None
    assert doc.verification(doc.document(ProtectionState.FAILED, reason="no")) is None


def test_a_report_replaces_the_pending_state_and_keeps_the_protections_models() -> None:
    protected = doc.document(ProtectionState.PROTECTED, models=["vae"], strength="default")
    done = doc.with_report(protected, report("holds"), {"thumb": report("weakened")})
    assert done["verification"] == doc.VERIFICATION_DONE and done["verified_at"]
    assert done["models"] == ["vae"] and "check" not in done
    assert (done["verdict"], done["budget"]["psnr"]) == ("holds", 40.0)
    assert set(done["sizes"]["thumb"]) == set(doc.SIZE_KEYS)
    assert done["sizes"]["thumb"]["verdict"] == "weakened"
    assert not doc.report_outdated(done, THRESHOLDS)
    assert doc.report_outdated(done, {**THRESHOLDS, "ratio_holds": 2.0})
    assert doc.report_outdated({**done, "updated_at": "9999-01-01T00:00:00.000Z"}, THRESHOLDS)

    again = doc.verification_pending(done)
    assert again["verification"] == doc.VERIFICATION_PENDING and doc.report_outdated(again, THRESHOLDS)
    assert not set(again) & {"verdict", "transforms", "budget", "sizes", "summary", "verified_at"}
    assert again["models"] == ["vae"] and again["state"] == "protected"

    failed = doc.verification_unavailable(done, doc.VERIFICATION_FAILED, "could not")
    assert (failed["verification"], failed["verification_reason"]) == ("failed", "could not")
    assert "transforms" not in failed


def test_the_owner_reads_the_verification() -> None:
    media = MediaAttachment(id=1, account_id=1, protection=ProtectionState.PROTECTED.value)
    doc.store(media, doc.with_report(doc.document(ProtectionState.PROTECTED, models=["vae"]),
                                     report("weakened"), {}))
    shown = doc.for_owner(media)
    assert shown["verification"] == "done" and shown["verdict"] == "weakened"
    media.meta = {}
    assert doc.for_owner(media)["verification"] is None  # written before verification existed
