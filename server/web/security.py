"""The security headers every HTML page carries, defined once.

The Content-Security-Policy is strict on purpose: no inline script or style anywhere, only
this origin's stylesheet and scripts, images from here or ``data:`` (the blurhash
placeholders), forms posting only here, never framed. A template that needs an inline
``style=""`` or ``<script>`` is a bug, not a reason to loosen the policy.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.urls import source_of

__all__ = ["content_security_policy", "source_of"]


def content_security_policy(image_origins: Iterable[str] = (),
                            form_targets: Iterable[str] = ()) -> str:
    """The policy, with ``img-src`` widened to exactly the other servers whose images a
    page shows (a remote artist's works are shown from their server, not copied here), and
    ``form-action`` to where a form's answer redirects (browsers apply ``form-action`` to the
    redirect too: the OAuth consent form's answer goes to the app's redirect URI)."""
    img_src = " ".join(["'self'", "data:", *sorted(set(image_origins))])
    form_action = " ".join(["'self'", *sorted(set(form_targets))])
    return "; ".join((
        "default-src 'none'",
        f"img-src {img_src}",
        "style-src 'self'",
        "script-src 'self'",
        f"form-action {form_action}",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ))


CONTENT_SECURITY_POLICY = content_security_policy()

# With the Content-Security-Policy of each page (server.web.session.page_headers).
SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Links out say which site sent the reader, never which page (a work id, a form).
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                           "interest-cohort=(), browsing-topics=()"),
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Pages that hold a secret (a login form, an authorization code): never cached, never
# sent as a Referer.
PRIVATE_PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def hsts_headers(scheme: str) -> dict[str, str]:
    """Strict-Transport-Security, only where the instance is served over https."""
    if scheme != "https":
        return {}
    return {"Strict-Transport-Security": "max-age=31536000"}
