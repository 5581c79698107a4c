"""Language codes (server.services.languages): Mastodon's list of posting languages, its case,
its cascade from a tag it does not list to the base language, and what is refused."""

from __future__ import annotations

import pytest

from server.services.errors import ValidationFailed
from server.services.languages import (
    ISO_639_1,
    ISO_639_3,
    LANGUAGES,
    REGIONAL,
    instance_languages,
    is_language_tag,
    known_language,
    normalize_language,
    remote_language,
)

# Mastodon's ISO 639-3 extras and regional entries (app/helpers/languages_helper.rb).
MASTODON_ISO_639_3 = set("ast chr ckb cnr csb jbo kab ldn lfn moh nds pdc sco sma smj szl tok vai xal "
                         "zba zgh".split())
MASTODON_REGIONAL = {"zh-CN", "zh-HK", "zh-TW", "zh-YUE", "ms-Arab"}


def test_the_list_is_mastodons() -> None:
    assert ISO_639_3 == MASTODON_ISO_639_3
    assert REGIONAL == MASTODON_REGIONAL
    assert len(ISO_639_1) == 184 and {"en", "pt", "zh", "gn", "sm"} <= ISO_639_1
    assert LANGUAGES["ast"] == ("Asturian", "Asturianu")
    assert LANGUAGES["zh-TW"] == ("Chinese (Taiwan)", "繁體中文（臺灣）")
    assert all(name and native for name, native in LANGUAGES.values())
    listed = instance_languages()
    assert listed[0] == {"code": "aa", "name": "Afar"}
    assert {entry["code"] for entry in listed} == set(LANGUAGES)


@pytest.mark.parametrize(("given", "expected"), [
    # Every kind Mastodon lists, in any case, written as the list writes it.
    ("en", "en"), ("EN", "en"), (" de ", "de"),
    ("ast", "ast"), ("CKB", "ckb"), ("kab", "kab"), ("tok", "tok"), ("zgh", "zgh"),
    ("zh-tw", "zh-TW"), ("ZH_TW", "zh-TW"), ("zh-CN", "zh-CN"), ("zh-yue", "zh-YUE"),
    ("ms-arab", "ms-Arab"),
    # A tag Mastodon does not list falls back to its base language (valid_locale_cascade).
    ("pt-BR", "pt"), ("pt_br", "pt"), ("en-GB", "en"), ("es-419", "es"), ("sr-Latn", "sr"),
    ("zh-Hant-TW", "zh"), ("ast-ES", "ast"),
    # The same language under the code clients send for it.
    ("yue", "zh-YUE"), ("yue-HK", "zh-YUE"), ("iw", "he"), ("in-ID", "id"),
])
def test_a_listed_language_is_normalised(given: str, expected: str) -> None:
    assert normalize_language(given) == expected
    assert known_language(given) == expected
    assert remote_language(given) == expected


@pytest.mark.parametrize("given", ["fil", "xx", "qaa", "fil-PH", "und", "sgn-US"])
def test_a_well_formed_tag_of_an_unknown_language_is_none_for_the_caller_to_fall_back(
        given: str) -> None:
    assert is_language_tag(given)
    assert normalize_language(given) is None
    assert known_language(given) is None


@pytest.mark.parametrize("given", ["12", "<script>", "a" * 40, "english", "klingon", "e", "en-",
                                   "en--US", "en US", "zh-TW-a-b-c", "en-abcdefghi", "ä"])
def test_what_is_not_a_language_tag_is_refused(given: str) -> None:
    assert not is_language_tag(given)
    with pytest.raises(ValidationFailed) as failed:
        normalize_language(given)
    assert failed.value.message == "Validation failed: Language is not a valid language code"
    assert known_language(given) is None
    assert remote_language(given) is None  # a remote post is never refused for it


@pytest.mark.parametrize("given", [None, "", "   "])
def test_no_language_is_none(given: str | None) -> None:
    assert normalize_language(given) is None
    assert remote_language(given) is None


@pytest.mark.parametrize(("given", "expected"), [
    # A remote server's unknown language is kept as sent (in BCP 47 case), as Mastodon does.
    ("fil", "fil"), ("FIL-ph", "fil-PH"), ("gsw", "gsw"), ("xx-latn-419", "xx-Latn-419"),
    # ...except "undetermined" and what would not fit the column.
    ("und", None), ("UND-US", None), ("xxx-abcdefgh-abcd", None),
])
def test_a_remote_language_is_kept_when_unknown(given: str, expected: str | None) -> None:
    assert remote_language(given) == expected
