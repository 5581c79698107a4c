"""The protection document: what an image's owner is told about its protection.

Stored in ``media.meta["protection"]`` by the protect job (``media.protection`` holds the
same state, for queries) and returned by ``GET /api/v1/easel/media/:id/protection``::

    {"state": "pending" | "protected" | "unprotected" | "failed",
     "progress": 0..1, "models": [names], "strength": "default" | None,
     "profile": "default" | "cpu" | None, "reason": str | None, "seconds": float | None,
     "updated_at": iso8601}

``models``/``strength``/``profile`` say what was applied (empty/None when nothing was),
``reason`` why an image is unprotected or failed, ``updated_at`` when that was recorded.

The verification (``protect/verify_job.py``) adds, for a protected image::

    "verification": "pending" | "done" | "failed" | "skipped",
    "verification_reason": str (why failed or skipped), "verified_at": iso8601,
    "budget", "transforms", "verdict", "summary", "battery", "untested", "resolution",
    "size", "thresholds"    (the full rendition's report, ``protect.verify.report``),
    "sizes": {"small": {...}, "thumb": {...}}    (each: budget, transforms, verdict,
                                                  summary, resolution, size)

The report's keys are there exactly when ``verification`` is ``done``. Its ``models`` is
not copied: a report is only made with the models the image was protected against, so it
is the document's own ``models``. An unprotected image has ``"verification": "skipped"``
(nothing to verify); pending and failed protections have none.

Some keys are the pipeline's own:
``requested`` ("unprotected": the author chose to publish without protection; the job
honours it, also when it redoes the media) and, while a ready image is being protected
again, ``previous`` (the document of the renditions still served, restored if the redo
fails for good) and ``expected`` (the configuration ``easel admin reprotect`` asked for; a
worker that loaded another one refuses the re-protection). ``previous`` and ``expected``
are never shown. A pending document names no models nor strength: the worker decides them.

Torch-free: the web process reads these documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.ids import utcnow
from server.models import MediaAttachment, ProtectionState

Document = dict[str, Any]

NO_MODEL_REASON = "no protection model is configured (EASEL_VAE_PATH is empty)"
AUTHOR_REASON = "published unprotected at the author's request"
REQUESTED_UNPROTECTED = "unprotected"
EXPECTED_KEY = "expected"
# "pictures": private storage keys of the report's pictures (protect/verify_job.py); the
# owner's web page serves them, the API does not show keys.
PICTURES_KEY = "pictures"
INTERNAL_KEYS = ("previous", EXPECTED_KEY, PICTURES_KEY)

# The verification's states.
VERIFICATION_PENDING = "pending"
VERIFICATION_DONE = "done"
VERIFICATION_FAILED = "failed"
VERIFICATION_SKIPPED = "skipped"
NOTHING_TO_VERIFY = "nothing to verify: the image was not perturbed"
#: What a report puts at the top level (the full rendition's), and in each of ``sizes``.
REPORT_KEYS = ("budget", "transforms", "verdict", "summary", "battery", "untested", "resolution",
               "size", "thresholds")
SIZE_KEYS = ("budget", "transforms", "verdict", "summary", "resolution", "size")
# (Not "pictures": files the document names stay named until a new report replaces them,
# which is when protect/verify_job.py deletes them; show them only with a done report.)
_VERIFICATION_KEYS = ("verification", "verification_reason", "verified_at", "sizes", *REPORT_KEYS)


def timestamp() -> str:
    """ISO 8601 in UTC with milliseconds, as the client API writes datetimes."""
    return utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(
    state: ProtectionState,
    *,
    models: Sequence[str] = (),
    strength: str | None = None,
    profile: str | None = None,
    reason: str | None = None,
    seconds: float | None = None,
    **extra: Any,
) -> Document:
    """A new document. A protected image's verification is pending (its job is enqueued
    with it); an unprotected one has nothing to verify."""
    verification: Document = {}
    if state == ProtectionState.PROTECTED:
        verification = {"verification": VERIFICATION_PENDING}
    elif state == ProtectionState.UNPROTECTED:
        verification = {"verification": VERIFICATION_SKIPPED, "verification_reason": NOTHING_TO_VERIFY}
    return {
        "state": state.value,
        "progress": 0.0 if state == ProtectionState.PENDING else 1.0,
        "models": list(models),
        "strength": strength,
        "profile": profile,
        "reason": reason,
        "seconds": round(seconds, 2) if seconds is not None else None,
        "updated_at": timestamp(),
        **verification,
        **extra,
    }


def stored(media: MediaAttachment) -> Document:
    """The document on the row (a copy; empty for rows written before it existed)."""
    found = (media.meta or {}).get("protection")
    return dict(found) if isinstance(found, dict) else {}


def store(media: MediaAttachment, doc: Document) -> None:
    """Write ``doc`` to the row: meta (a new dict, so the JSON column is saved) and column."""
    media.meta = {**(media.meta or {}), "protection": doc}
    media.protection = doc["state"]


def requested_unprotected(doc: Document) -> bool:
    return doc.get("requested") == REQUESTED_UNPROTECTED


def pending(media: MediaAttachment, *, strength: str | None, requested: str | None = None,
            redo: bool = False) -> Document:
    """The document of a media queued for (re-)protection. ``redo``: it has renditions,
    which stay served until the new ones land; their document is kept as ``previous``."""
    previous = stored(media)
    extra: dict[str, Any] = {}
    if requested is not None:
        extra["requested"] = requested
    if redo:
        previous.pop("previous", None)
        extra["previous"] = previous
    return document(ProtectionState.PENDING, strength=strength, **extra)


# ------------------------------------------------------------------------ verification

def verification(doc: Document) -> str | None:
    """The verification's state (None: a pending or failed protection, or a document
    written before verification existed)."""
    value = doc.get("verification")
    return value if isinstance(value, str) else None


def _without_report(doc: Document) -> Document:
    return {key: value for key, value in doc.items() if key not in _VERIFICATION_KEYS}


def verification_pending(doc: Document) -> Document:
    """``doc`` with its report dropped and a new verification pending (``easel admin
    reverify``)."""
    return {**_without_report(doc), "verification": VERIFICATION_PENDING}


def with_report(doc: Document, full: Document, sizes: dict[str, Document],
                pictures: Document | None = None) -> Document:
    """``doc`` with the reports of the full rendition (at the top level) and of the other
    sizes (``protect.verify.report`` documents): verification done. ``pictures``: the
    report's pictures (``{"model", "crop", "reconstruction_clean",
    "reconstruction_protected"}``, the last two private storage keys), when made."""
    kept = {key: value for key, value in _without_report(doc).items() if key != PICTURES_KEY}
    return {
        **kept,
        **{key: full[key] for key in REPORT_KEYS},
        "sizes": {name: {key: report[key] for key in SIZE_KEYS} for name, report in sizes.items()},
        "verification": VERIFICATION_DONE,
        "verified_at": timestamp(),
        **({PICTURES_KEY: pictures} if pictures else {}),
    }


def picture_keys(doc: Document) -> list[str]:
    """The private storage keys of a document's report pictures."""
    pictures = doc.get(PICTURES_KEY)
    if not isinstance(pictures, dict):
        return []
    return [value for name, value in pictures.items()
            if name.startswith("reconstruction_") and isinstance(value, str)]


def verification_unavailable(doc: Document, outcome: str, reason: str) -> Document:
    """``doc`` saying why it has no report: ``outcome`` is VERIFICATION_FAILED (it could
    not be made) or VERIFICATION_SKIPPED (there is nothing to measure it with)."""
    return {**_without_report(doc), "verification": outcome, "verification_reason": reason,
            "verified_at": timestamp()}


def report_outdated(doc: Document, thresholds: dict[str, float]) -> bool:
    """Whether a protected image's document lacks a report, or has one older than its
    protection or made with other thresholds than ``thresholds``."""
    if verification(doc) != VERIFICATION_DONE:
        return True
    verified, updated = doc.get("verified_at"), doc.get("updated_at")
    if isinstance(verified, str) and isinstance(updated, str) and verified < updated:
        return True  # same format, in UTC: the strings sort as the times do
    return doc.get("thresholds") != thresholds


def for_owner(media: MediaAttachment, progress: float | None = None) -> Document:
    """The document as the API returns it. The state comes from the row's column (the
    source of truth); ``progress`` is the job's, live, while the state is pending."""
    doc = {key: value for key, value in stored(media).items() if key not in INTERNAL_KEYS}
    state = media.protection
    if state == ProtectionState.PENDING:
        shown = progress if progress is not None else 0.0
    elif state == ProtectionState.FAILED:
        shown = 0.0
    else:
        shown = 1.0
    if state == ProtectionState.FAILED and not doc.get("reason"):
        doc["reason"] = media.processing_error
    return {
        "state": state,
        "progress": round(min(max(shown, 0.0), 1.0), 3),
        "models": list(doc.pop("models", None) or []),
        "strength": doc.pop("strength", None),
        "profile": doc.pop("profile", None),
        "reason": doc.pop("reason", None),
        "seconds": doc.pop("seconds", None),
        "updated_at": doc.pop("updated_at", None),
        "verification": doc.pop("verification", None),
        **{k: v for k, v in doc.items() if k not in ("state", "progress")},
    }


def is_stale(doc: Document, *, models: Sequence[str], strength: str, profile: str | None) -> bool:
    """Whether a ready image's document differs from the configuration: other models, or
    another strength, or (``profile`` not None: set explicitly, not "auto") another profile.
    Images the author chose to publish unprotected are never stale."""
    if requested_unprotected(doc):
        return False
    if list(doc.get("models") or []) != list(models) or doc.get("strength") != strength:
        return True
    return profile is not None and doc.get("profile") != profile
