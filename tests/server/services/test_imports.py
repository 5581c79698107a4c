"""Reading import files as Mastodon writes them (server/services/imports.py)."""

from __future__ import annotations

import pytest

from server.services.imports import MAX_ROWS, ImportRefused, parse_import


def test_a_following_export_with_its_header_is_read_with_its_options() -> None:
    parsed = parse_import("following", (
        b"Account address,Show boosts,Notify on new posts,Languages\n"
        b"bob@paint.example,false,true,\n"
        b"@carol@Art.Example,,,en\n"))
    assert parsed.rows == [
        {"acct": "bob@paint.example", "show_reblogs": False, "notify": True},
        {"acct": "carol@art.example", "show_reblogs": True, "notify": False},
    ]


def test_headerless_files_and_a_byte_order_mark_are_read() -> None:
    assert parse_import("blocking", "\ufeffbob@paint.example\n\n".encode()).rows == [
        {"acct": "bob@paint.example"}]
    assert parse_import("muting", b"Account address,Hide notifications\nbob@paint.example,false\n"
                        ).rows == [{"acct": "bob@paint.example", "hide_notifications": False}]
    assert parse_import("domain_blocking", b"Spam.Example\n").rows == [{"domain": "spam.example"}]
    assert parse_import("bookmarks", b"https://paint.example/users/bob/statuses/1\n").rows == [
        {"uri": "https://paint.example/users/bob/statuses/1"}]
    assert parse_import("lists", b'"Inks, watercolours",bob@paint.example\n').rows == [
        {"list": "Inks, watercolours", "acct": "bob@paint.example"}]


def test_a_bad_row_is_kept_with_why_and_the_rest_is_imported() -> None:
    rows = parse_import("following", b"bob@paint.example\nnot an address\nhttps://x.example/@y\n").rows
    assert rows[0] == {"acct": "bob@paint.example", "show_reblogs": True, "notify": False}
    assert rows[1]["error"] == rows[2]["error"] == "not an account address (user@domain)"
    assert parse_import("bookmarks", b"ftp://x\n").rows[0]["error"].startswith("not a post")
    assert parse_import("lists", b"Friends\n").rows[0]["error"].startswith("expected a list title")


@pytest.mark.parametrize(("kind", "data", "message"), [
    ("contacts", b"bob@paint.example\n", "Unknown import type 'contacts'"),
    ("following", b"", "The file has no rows to import"),
    ("following", b"Account address,Show boosts\n", "The file has no rows to import"),
    ("following", b"\xff\xfe\x00b", "not UTF-8 text"),
    ("following", b"bob@paint.example\x00\n", "not a CSV file"),
    ("following", b"x" * (4 * 1024 * 1024 + 1), "too large"),
    ("blocking", ("a@b.example\n" * (MAX_ROWS + 1)).encode(), f"at most {MAX_ROWS}"),
])
def test_files_that_cannot_be_imported_are_refused_with_why(kind: str, data: bytes, message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        parse_import(kind, data)
