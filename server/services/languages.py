"""Language codes: what a status's ``language`` and a profile's default language may be."""

from __future__ import annotations

import re

from server.services.errors import ValidationFailed

# ISO 639-1: the two-letter codes Mastodon clients send.
ISO_639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr
ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw
ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv
ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr
ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
yo za zh zu
""".split())

_LANGUAGE_RE = re.compile(r"\A([a-z]{2})(?:[-_]([a-z]{2}|[a-z]{4}))?\Z", re.IGNORECASE)


def normalize_language(language: str | None) -> str | None:
    """An ISO 639-1 code (optionally with a region or script: ``pt-BR``, ``sr-Latn``);
    None for none given; ValidationFailed for anything else."""
    if language is None or not language.strip():
        return None
    match = _LANGUAGE_RE.match(language.strip())
    if match is None or match.group(1).lower() not in ISO_639_1:
        raise ValidationFailed("Language is not a valid ISO 639-1 code")
    base, sub = match.group(1).lower(), match.group(2)
    if sub is None:
        return base
    return f"{base}-{sub.upper() if len(sub) == 2 else sub.title()}"
