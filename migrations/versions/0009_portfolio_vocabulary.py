"""portfolio vocabulary: the default suggestion lists (fields, mediums, project types,
categories, software) with their aliases

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28

Self-contained on purpose: the data and the key normalisation are copied here (a migration
must not import application code, which changes after it). Terms get fixed small ids, far
below any Snowflake id ``new_id`` makes, so they cannot collide; the downgrade deletes
exactly those ids (and their aliases) unless works use them.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# kind → [(name, [aliases…]), …] in suggestion order.
VOCABULARY: dict[str, list[tuple[str, list[str]]]] = {
    "field": [
        ("Illustration", []), ("Concept Art", ["concept"]), ("Game Art", ["game development art"]),
        ("Comics", ["comic", "comic art", "manga"]), ("Animation", ["animated"]),
        ("Character Design", []), ("Environment Design", []), ("Storyboarding", ["storyboard"]),
        ("Graphic Design", []), ("Fine Art", []), ("Sculpture", []), ("Photography", ["photo"]),
        ("Printmaking", ["print"]), ("Children's Books", ["picture books", "kidlit"]),
        ("Book Covers", ["cover art"]), ("Matte Painting", []), ("Props", ["prop design"]),
        ("Tattoo", ["tattoo design"]), ("Fashion", ["fashion illustration"]),
        ("Architecture", ["architectural visualisation", "archviz"]),
    ],
    "medium": [
        ("Oil", ["oil paint", "oil painting", "oils"]),
        ("Acrylic", ["acrylics", "acrylic paint"]),
        ("Watercolour", ["watercolor", "watercolours", "watercolors"]),
        ("Gouache", []), ("Ink", ["inks", "ink drawing"]), ("Pencil", ["graphite", "pencils"]),
        ("Charcoal", []), ("Pastel", ["pastels", "soft pastel", "oil pastel"]),
        ("Coloured Pencil", ["colored pencil", "coloured pencils", "colored pencils"]),
        ("Marker", ["markers", "copic"]),
        ("Digital Painting", ["digital art", "digital"]), ("3D", ["3d art", "cgi"]),
        ("Pixel Art", ["pixelart", "pixel"]), ("Vector", ["vector art"]),
        ("Mixed Media", ["mixedmedia"]), ("Clay", []), ("Linocut", ["lino"]),
        ("Collage", []),
    ],
    "project_type": [
        ("Personal", ["personal work", "personal project"]), ("Client", ["client work"]),
        ("Commission", ["commissions", "commissioned"]), ("Study", ["studies"]),
        ("Fan Art", ["fanart"]), ("Sketch", ["sketches", "sketchbook"]),
        ("Speedpaint", ["speed painting", "speedpainting"]), ("Original Character", ["oc"]),
        ("Challenge", ["art challenge"]),
    ],
    "category": [
        ("Portrait", ["portraits", "portraiture"]), ("Landscape", ["landscapes"]),
        ("Character", ["characters"]), ("Creature", ["creatures", "creature design"]),
        ("Environment", ["environments"]), ("Still Life", []), ("Abstract", []),
        ("Figure", ["figure drawing", "life drawing"]), ("Fantasy", []),
        ("Science Fiction", ["sci-fi", "scifi"]), ("Animals", ["animal", "wildlife"]),
        ("Architecture", ["buildings"]), ("Vehicles", ["vehicle"]), ("Horror", []),
        ("Nature", ["botanical"]), ("Urban", ["cityscape"]),
    ],
    "software": [
        ("Krita", []), ("Procreate", []),
        ("Photoshop", ["ps", "adobe photoshop"]), ("Blender", []),
        ("Clip Studio", ["clip studio paint", "csp", "clipstudiopaint"]),
        ("Illustrator", ["adobe illustrator", "ai"]), ("GIMP", []),
        ("Affinity Photo", []), ("Affinity Designer", []), ("ZBrush", []),
        ("Aseprite", []), ("Inkscape", []), ("Paint Tool SAI", ["sai", "painttool sai"]),
        ("Substance Painter", ["substance 3d painter"]), ("Maya", ["autodesk maya"]),
        ("Cinema 4D", ["c4d"]), ("Unreal Engine", ["unreal", "ue5"]),
        ("Rebelle", []), ("Corel Painter", ["painter"]), ("MediBang Paint", ["medibang"]),
        ("Fresco", ["adobe fresco"]), ("Infinite Painter", []),
    ],
}


def _key(text: str) -> str:
    """The same normalisation as ``server.services.portfolio.normalise_key`` (copied)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def _rows() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    now = datetime.now(UTC)
    terms: list[dict[str, object]] = []
    aliases: list[dict[str, object]] = []
    next_id = 1
    for kind, entries in VOCABULARY.items():
        for position, (name, alias_names) in enumerate(entries):
            key = _key(name)
            terms.append({"id": next_id, "kind": kind, "key": key, "name": name,
                          "suggested": True, "position": position, "created_at": now})
            seen = {key}
            for alias in alias_names:
                alias_key = _key(alias)
                if alias_key and alias_key not in seen:
                    seen.add(alias_key)
                    aliases.append({"kind": kind, "key": alias_key, "tag_id": next_id})
            next_id += 1
    return terms, aliases


portfolio_tags = sa.table(
    'portfolio_tags',
    sa.column('id', sa.BigInteger()), sa.column('kind', sa.String()),
    sa.column('key', sa.String()), sa.column('name', sa.String()),
    sa.column('suggested', sa.Boolean()), sa.column('position', sa.Integer()),
    sa.column('created_at', sa.DateTime(timezone=True)),
)
portfolio_tag_aliases = sa.table(
    'portfolio_tag_aliases',
    sa.column('kind', sa.String()), sa.column('key', sa.String()),
    sa.column('tag_id', sa.BigInteger()),
)


def upgrade() -> None:
    terms, aliases = _rows()
    bind = op.get_bind()
    # Terms someone already created (by key) are promoted instead of inserted twice.
    existing = {(kind, key): tag_id for tag_id, kind, key in bind.execute(
        sa.select(portfolio_tags.c.id, portfolio_tags.c.kind, portfolio_tags.c.key))}
    ids: dict[object, object] = {}
    new_terms = []
    for term in terms:
        found = existing.get((term["kind"], term["key"]))
        if found is None:
            new_terms.append(term)
            ids[term["id"]] = term["id"]
        else:
            ids[term["id"]] = found
            bind.execute(portfolio_tags.update().where(portfolio_tags.c.id == found).values(
                suggested=True, position=term["position"], name=term["name"]))
    if new_terms:
        op.bulk_insert(portfolio_tags, new_terms)
    taken = {(kind, key) for kind, key in bind.execute(
        sa.select(portfolio_tag_aliases.c.kind, portfolio_tag_aliases.c.key))}
    new_aliases = [{**alias, "tag_id": ids[alias["tag_id"]]} for alias in aliases
                   if (alias["kind"], alias["key"]) not in taken
                   and (alias["kind"], alias["key"]) not in existing]
    if new_aliases:
        op.bulk_insert(portfolio_tag_aliases, new_aliases)


def downgrade() -> None:
    terms, _aliases = _rows()
    seeded = [term["id"] for term in terms]
    work_tags = sa.table('work_tags', sa.column('tag_id', sa.BigInteger()))
    used = sa.select(work_tags.c.tag_id)
    op.execute(portfolio_tag_aliases.delete().where(
        portfolio_tag_aliases.c.tag_id.in_(seeded), portfolio_tag_aliases.c.tag_id.not_in(used)))
    op.execute(portfolio_tags.delete().where(
        portfolio_tags.c.id.in_(seeded), portfolio_tags.c.id.not_in(used)))
