"""The media types ActivityPub documents travel as, and content negotiation for them."""

from __future__ import annotations

from starlette.requests import Request

AS2_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
ACTIVITY_JSON = "application/activity+json"
LD_JSON_AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def accepts_activity_json(request: Request) -> bool:
    """True when the client asks for an AS2 document rather than a page."""
    accept = request.headers.get("accept", "").lower()
    for part in accept.split(","):
        media_type, _, params = part.strip().partition(";")
        media_type = media_type.strip()
        if media_type == ACTIVITY_JSON:
            return True
        if media_type == "application/ld+json":
            # Plain ld+json or the AS2 profile; another profile is not ours to answer.
            profile = params.replace(" ", "")
            if "profile=" not in profile or "activitystreams" in profile:
                return True
    return False
