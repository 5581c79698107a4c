"""Domain blocks: what an admin decides about another server, and what follows from it.

Why it exists: ``easel admin domain-block`` (and later the admin API) needs one place that
checks a domain, stores the block, and applies its immediate consequences; timelines need
to know which domains are silenced; and federation needs to know which domain a URL is
on, by the same rule everywhere. So the normalisation lives here (``federation.domains``
imports it: services never import federation).

Severities, as Mastodon's:

* ``suspend``: nothing in, nothing out. Follows both ways between local accounts and the
  domain's accounts are removed at once (their counters move with them); they do not come
  back when the block is lifted.
* ``silence``: the domain's accounts are kept out of the public and hashtag timelines,
  except for viewers who follow them.
* ``noop``: only ``reject_media`` applies.

``reject_media`` (implied by ``suspend``): the domain's media are neither fetched nor shown.
Making a block that rejects media, or changing one so that it does, queues the
``clear_domain_media`` job (``federation.media_cache``, enqueued by name) for what is stored
already: the covered accounts' avatars and headers, cached copies and attachments.

A block on ``example.com`` covers ``a.example.com`` and every port; a block with a port
(``example.com:8443``) covers exactly that host and port. The most specific block wins.

What it must never do: import ``federation``, send anything (a suspended domain hears
nothing, not even Undo), or accept a domain it cannot parse (an invalid or empty one is a
``ValidationFailed`` and stores nothing).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, case, delete, false, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import utcnow
from server.models import Account, DomainAllow, DomainBlock, DomainBlockSeverity, Follow, FollowRequest
from server.queue.jobs import enqueue
from server.queue.kinds import kind_named
from server.services.errors import NotFound, ServiceError, ValidationFailed

SEVERITIES = ("suspend", "silence", "noop")  # every DomainBlockSeverity, strictest first
MAX_DOMAIN_LENGTH = 253
MAX_COMMENT_LENGTH = 5000
_LABEL_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_HIDING = (DomainBlockSeverity.SILENCE.value, DomainBlockSeverity.SUSPEND.value)
# ``Account.suspension_origin`` of an account suspended because its domain is.
DOMAIN_SUSPENSION = "domain"
# The job (federation.media_cache) that clears the stored media of a block's domain.
CLEAR_DOMAIN_MEDIA_JOB = "clear_domain_media"


# --------------------------------------------------------------------------- domains

def domain_of(url_or_domain: str) -> str:
    """``https://Example.com:8443/x`` → ``example.com:8443``; a bare domain lower-cased.

    Lenient (it never raises): for URLs and domains other servers send. Admin input goes
    through :func:`normalize_domain`, which checks.
    """
    text = url_or_domain.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = _ascii_host(parts.hostname or "")
            port = parts.port
        except ValueError:
            return ""
        return f"{host}:{port}" if port else host
    host, colon, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    return _ascii_host(host) + colon + port_text


def _ascii_host(host: str) -> str:
    """A host as blocks store it: lower case, no trailing dot, IDNA (punycode), so that
    ``Bücher.example.`` and ``xn--bcher-kva.example`` are one domain. A name IDNA refuses
    is kept lower-cased (it matches no block an admin could have entered)."""
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def normalize_domain(raw: str) -> str:
    """An admin's domain (``Example.COM``, ``https://example.com/@x``, ``bücher.example``,
    ``*.example.com``, ``example.com:8443``) as ``host[:port]``: lower case, IDNA
    (punycode), no trailing dot. ``ValidationFailed`` when it is not a domain."""
    text = raw.strip()
    if text.startswith("*."):
        text = text[2:]  # a block covers subdomains anyway
    if "://" in text:
        try:
            parts = urlsplit(text)
            host_part = parts.hostname or ""
            port: int | None = parts.port
        except ValueError:
            raise ValidationFailed(f"Domain is invalid: {raw!r}") from None
    else:
        host_part, colon, port_text = text.rpartition(":") if ":" in text else (text, "", "")
        port = None
        if colon:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValidationFailed(f"Domain is invalid (bad port): {raw!r}")
            port = int(port_text)
    host = host_part.rstrip(".")
    try:
        host = host.encode("idna").decode("ascii").lower() if host else ""
    except UnicodeError:
        raise ValidationFailed(f"Domain is invalid: {raw!r}") from None
    labels = host.split(".")
    if (not host or len(host) > MAX_DOMAIN_LENGTH
            or not all(_LABEL_RE.match(label) for label in labels)):
        raise ValidationFailed(f"Domain is invalid: {raw!r}")
    return f"{host}:{port}" if port is not None else host


def domain_candidates(domain: str) -> list[str]:
    """The block domains that could cover ``domain`` (``host[:port]``), most specific
    first: the domain itself, then without its port, then every parent domain."""
    host, _, port = domain.partition(":")
    names = [domain] if port else []
    labels = host.split(".")
    names += [".".join(labels[i:]) for i in range(len(labels)) if labels[i:]]
    return names


def covers(block_domain: str, domain: str) -> bool:
    """Whether a block on ``block_domain`` covers ``domain`` (both ``host[:port]``)."""
    return block_domain in domain_candidates(domain)


def accounts_covered_by(block_domains: Iterable[str]) -> ColumnElement[bool]:
    """A WHERE clause on ``Account``: remote accounts on any of ``block_domains``
    (subdomains and ports included, as :func:`covers`)."""
    clauses: list[ColumnElement[bool]] = []
    for block in block_domains:
        if ":" in block:
            clauses.append(Account.domain == block)
        else:
            clauses += [
                Account.domain == block,
                Account.domain.endswith("." + block, autoescape=True),
                Account.domain.startswith(block + ":", autoescape=True),
                Account.domain.like("%." + _like_escaped(block) + ":%", escape="\\"),
            ]
    return or_(*clauses) if clauses else false()


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ------------------------------------------------------------------------ admin changes

@dataclass(frozen=True)
class BlockResult:
    block: DomainBlock
    created: bool
    follows_removed: int = 0
    requests_removed: int = 0
    # The block now rejects media where it did not: the stored media are being cleared.
    clearing_media: bool = False


def rejects_media(block: DomainBlock) -> bool:
    """Whether ``block`` rejects media (``reject_media``, or a suspension)."""
    return bool(block.reject_media) or block.severity == DomainBlockSeverity.SUSPEND


def _severity(value: str) -> str:
    severity = value.strip().lower()
    if severity not in SEVERITIES:
        raise ValidationFailed(
            f"Severity {value!r} is not one of {', '.join(SEVERITIES)}")
    return severity


def _comment(value: str | None, what: str) -> str | None:
    if value is not None and len(value) > MAX_COMMENT_LENGTH:
        raise ValidationFailed(f"{what} is too long (maximum is {MAX_COMMENT_LENGTH} characters)")
    return value


async def block_domain(
    session: AsyncSession, domain: str, *, own_domain: str, severity: str = "suspend",
    reject_media: bool = False, public_comment: str | None = None,
    private_comment: str | None = None, reject_reports: bool | None = None,
    obfuscate: bool | None = None,
) -> BlockResult:
    """Block ``domain`` (or change its block to exactly this severity and media rule;
    comments, ``reject_reports`` and ``obfuscate`` are kept unless given); committed. A
    suspension removes the follows and follow requests between local accounts and the
    domain's accounts; a block that now rejects media (and did not, or is new) queues
    ``clear_domain_media`` for the media stored already.

    ``ValidationFailed`` for an invalid domain, an unknown severity, this server's own
    domain (``own_domain``) or an overlong comment; nothing is stored then.
    """
    name = normalize_domain(domain)
    level = _severity(severity)
    if covers(name, own_domain.lower()):
        raise ValidationFailed(f"{name} covers this server's own domain")
    public_comment = _comment(public_comment, "Public comment")
    private_comment = _comment(private_comment, "Private comment")
    block = await session.scalar(select(DomainBlock).where(DomainBlock.domain == name))
    created = block is None
    rejected_before = block is not None and rejects_media(block)
    if block is None:
        block = DomainBlock(domain=name)
        session.add(block)
    block.severity = level
    block.reject_media = reject_media
    if reject_reports is not None:
        block.reject_reports = reject_reports
    if obfuscate is not None:
        block.obfuscate = obfuscate
    if public_comment is not None:
        block.public_comment = public_comment
    if private_comment is not None:
        block.private_comment = private_comment
    try:
        await session.flush()
    except IntegrityError:  # another admin command blocked it at this very moment
        await session.rollback()
        raise ServiceError(f"{name} was blocked concurrently; run the command again", 409) from None
    follows = requests = 0
    if level == DomainBlockSeverity.SUSPEND:
        follows, requests = await _sever(session, name)
    await sync_domain_suspensions(session)
    clearing = rejects_media(block) and not rejected_before
    if clearing:  # again: the domain may have been blocked, unblocked and blocked anew
        await enqueue(session, kind_named(CLEAR_DOMAIN_MEDIA_JOB), name, again=True)
    await session.commit()
    return BlockResult(block=block, created=created, follows_removed=follows,
                       requests_removed=requests, clearing_media=clearing)


async def unblock_domain(session: AsyncSession, domain: str) -> DomainBlock:
    """Lift the block on ``domain`` (committed); NotFound when there is none. Follows a
    suspension removed stay removed."""
    name = normalize_domain(domain)
    block = await session.scalar(select(DomainBlock).where(DomainBlock.domain == name))
    if block is None:
        raise NotFound(f"No domain block for {name}")
    await session.delete(block)
    await session.flush()
    await sync_domain_suspensions(session)
    await session.commit()
    return block


async def list_domain_blocks(session: AsyncSession) -> list[DomainBlock]:
    return list(await session.scalars(select(DomainBlock).order_by(DomainBlock.domain)))


async def get_domain_block(session: AsyncSession, block_id: int) -> DomainBlock:
    block = await session.get(DomainBlock, block_id)
    if block is None:
        raise NotFound("Record not found")
    return block


class ExistingDomainBlock(ServiceError):
    """A new block refused because of the block already deciding for its domain: the
    domain's own block, or a less specific one the new block would loosen in some respect
    (Mastodon's 422 with ``existing_domain_block``; the API answers that block too)."""

    def __init__(self, existing: DomainBlock) -> None:
        super().__init__(f"You have already imposed stricter limits on {existing.domain}.", 422)
        self.existing = existing


def _stricter_than(severity: str, reject_media: bool, reject_reports: bool,
                   other: DomainBlock) -> bool:
    """Mastodon's ``DomainBlock#stricter_than?``: whether a block of ``severity`` and
    these rules limits at least as much as ``other`` in every respect."""
    if severity == DomainBlockSeverity.SUSPEND:
        return True
    if other.severity == DomainBlockSeverity.SUSPEND:
        return False
    if other.severity == DomainBlockSeverity.SILENCE and severity == DomainBlockSeverity.NOOP:
        return False
    return (reject_media or not other.reject_media) and (reject_reports or not other.reject_reports)


async def deciding_block(session: AsyncSession, name: str) -> DomainBlock | None:
    """The block that decides for the domain ``name`` (``host[:port]``): the most specific
    one covering it (Mastodon's ``DomainBlock.rule_for``)."""
    candidates = domain_candidates(name)
    found = {block.domain: block for block in await session.scalars(
        select(DomainBlock).where(DomainBlock.domain.in_(candidates)))}
    return next((found[c] for c in candidates if c in found), None)


async def create_domain_block(
    session: AsyncSession, domain: str, *, own_domain: str, severity: str = "silence",
    reject_media: bool = False, reject_reports: bool = False, public_comment: str | None = None,
    private_comment: str | None = None, obfuscate: bool = False,
) -> BlockResult:
    """A new block (the admin API's create), else as :func:`block_domain`.
    :class:`ExistingDomainBlock` when ``domain`` has a block already (change that one
    instead) or the new block would loosen the less specific one covering it."""
    name = normalize_domain(domain)
    level = _severity(severity)
    existing = await deciding_block(session, name)
    if existing is not None and (existing.domain == name or not _stricter_than(
            level, reject_media, reject_reports, existing)):
        raise ExistingDomainBlock(existing)
    return await block_domain(
        session, name, own_domain=own_domain, severity=severity, reject_media=reject_media,
        reject_reports=reject_reports, public_comment=public_comment,
        private_comment=private_comment, obfuscate=obfuscate)


async def update_domain_block(
    session: AsyncSession, block_id: int, *, own_domain: str, severity: str | None = None,
    reject_media: bool | None = None, reject_reports: bool | None = None,
    public_comment: str | None = None, private_comment: str | None = None,
    obfuscate: bool | None = None,
) -> BlockResult:
    """Change the block ``block_id``; what is not given is kept (a change to ``suspend``
    severs follows as a new suspension does)."""
    block = await get_domain_block(session, block_id)
    return await block_domain(
        session, block.domain, own_domain=own_domain,
        severity=severity if severity is not None else block.severity,
        reject_media=reject_media if reject_media is not None else block.reject_media,
        reject_reports=reject_reports, public_comment=public_comment,
        private_comment=private_comment, obfuscate=obfuscate)


async def remove_domain_block(session: AsyncSession, block_id: int) -> None:
    block = await get_domain_block(session, block_id)
    await session.delete(block)
    await session.flush()
    await sync_domain_suspensions(session)
    await session.commit()


def obfuscated(domain: str) -> str:
    """The domain as the public list shows an obfuscated block, as Mastodon's
    ``DomainBlock#public_domain``: the middle half starred out, dots kept
    (``example.com`` → ``exa****.*om``)."""
    visible = len(domain) // 4
    return "".join("*" if visible < i < len(domain) - visible and c != "." else c
                   for i, c in enumerate(domain))


# ------------------------------------------------------------------- CSV import/export

CSV_HEADER = ("#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment",
              "#obfuscate")


def export_csv(blocks: Sequence[DomainBlock]) -> str:
    """Blocks in Mastodon's export format (Moderation → Federation → Export)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for block in blocks:
        writer.writerow([block.domain, block.severity, _csv_bool(block.reject_media),
                         _csv_bool(block.reject_reports), block.public_comment or "",
                         _csv_bool(block.obfuscate)])
    return out.getvalue()


def _csv_bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class ImportedBlock:
    domain: str
    severity: str
    reject_media: bool
    reject_reports: bool
    public_comment: str
    obfuscate: bool


def parse_csv(text: str) -> list[ImportedBlock]:
    """Mastodon's export (with its ``#domain,…`` header) or a bare list of domains (one a
    line: suspended). ValidationFailed, naming the line, for anything else; nothing is
    returned half-parsed."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if header and header[0] == "#domain":
        columns = {name.lstrip("#"): index for index, name in enumerate(header)}
        body = rows[1:]
        first_line = 2
    else:
        columns = {"domain": 0}
        body = rows
        first_line = 1
    result: list[ImportedBlock] = []
    for number, row in enumerate(body, start=first_line):
        def cell(name: str, row: list[str] = row) -> str:
            index = columns.get(name)
            return row[index].strip() if index is not None and index < len(row) else ""

        try:
            domain = normalize_domain(cell("domain"))
            severity = _severity(cell("severity") or "suspend")
            public_comment = _comment(cell("public_comment"), "Public comment") or ""
            flags = [_parse_csv_bool(cell(name)) for name in
                     ("reject_media", "reject_reports", "obfuscate")]
        except ValidationFailed as error:
            detail = error.message.removeprefix("Validation failed: ")
            raise ValidationFailed(f"line {number}: {detail}") from None
        result.append(ImportedBlock(domain, severity, flags[0], flags[1], public_comment, flags[2]))
    return result


def _parse_csv_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ValidationFailed(f"{raw!r} is not true or false")


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    skipped: list[str]


async def import_blocks(session: AsyncSession, blocks: Sequence[ImportedBlock], *,
                        own_domain: str) -> ImportResult:
    """Apply parsed blocks (each committed as :func:`block_domain`); a block covering this
    server's own domain is skipped and named in the result."""
    created = updated = 0
    skipped: list[str] = []
    for item in blocks:
        try:
            result = await block_domain(
                session, item.domain, own_domain=own_domain, severity=item.severity,
                reject_media=item.reject_media, reject_reports=item.reject_reports,
                public_comment=item.public_comment, obfuscate=item.obfuscate)
        except ValidationFailed:
            skipped.append(item.domain)
            continue
        created += result.created
        updated += not result.created
    return ImportResult(created=created, updated=updated, skipped=skipped)


# --------------------------------------------------------------------- domain allows

async def allow_domain(session: AsyncSession, domain: str) -> DomainAllow:
    """Allow ``domain`` (for allowlist mode); an existing allow is returned as it is."""
    name = normalize_domain(domain)
    found = await session.scalar(select(DomainAllow).where(DomainAllow.domain == name))
    if found is not None:
        return found
    allow = DomainAllow(domain=name)
    session.add(allow)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ServiceError(f"{name} was allowed concurrently; try again", 409) from None
    return allow


async def list_domain_allows(session: AsyncSession) -> list[DomainAllow]:
    return list(await session.scalars(select(DomainAllow).order_by(DomainAllow.domain)))


async def get_domain_allow(session: AsyncSession, allow_id: int) -> DomainAllow:
    allow = await session.get(DomainAllow, allow_id)
    if allow is None:
        raise NotFound("Record not found")
    return allow


async def remove_domain_allow(session: AsyncSession, allow_id: int) -> None:
    allow = await get_domain_allow(session, allow_id)
    await session.delete(allow)
    await session.commit()


async def _sever(session: AsyncSession, block_domain: str) -> tuple[int, int]:
    """Remove follows and follow requests between local accounts and the accounts a
    suspension of ``block_domain`` covers (more specific non-suspend blocks excepted);
    the follow counters move by what was removed. Returns (follows, requests) removed."""
    suspended = await _hidden_accounts(session, only_suspended=True)
    if suspended is None:
        return 0, 0
    remote = select(Account.id).where(
        Account.domain != "", accounts_covered_by([block_domain]), suspended)
    local = select(Account.id).where(Account.domain == "")
    removed: Counter[tuple[str, int]] = Counter()
    follows = 0
    for source, target in ((local, remote), (remote, local)):
        rows = (await session.execute(
            delete(Follow).where(Follow.account_id.in_(source), Follow.target_account_id.in_(target))
            .returning(Follow.account_id, Follow.target_account_id)
            .execution_options(synchronize_session=False))).all()
        follows += len(rows)
        for account_id, target_id in rows:
            removed[("following_count", account_id)] += 1
            removed[("followers_count", target_id)] += 1
    requests = 0
    for source, target in ((local, remote), (remote, local)):
        result = await session.execute(
            delete(FollowRequest).where(FollowRequest.account_id.in_(source),
                                        FollowRequest.target_account_id.in_(target))
            .returning(FollowRequest.id).execution_options(synchronize_session=False))
        requests += len(result.all())
    for (column_name, account_id), count in removed.items():
        column: Any = getattr(Account, column_name)
        await session.execute(
            update(Account).where(Account.id == account_id)
            .values({column_name: case((column - count < 0, 0), else_=column - count)})
            .execution_options(synchronize_session=False))
    return follows, requests


async def sync_domain_suspensions(session: AsyncSession) -> None:
    """Make the stored accounts' suspensions follow the domain blocks, as Mastodon's
    BlockDomainService and UnblockDomainService do (not committed): the accounts a
    suspension now covers are suspended (``suspension_origin`` "domain"), and those it
    suspended that no suspension covers any more are unsuspended — a suspension of an
    account's own (its moderators', its server's, its deletion's) is left as it is. So
    every read path hides a suspended domain's accounts and posts by the one rule for
    suspended accounts (``server.services.visibility.not_suspended_author``), at no cost
    to reads. Allowlist mode's domains not allowed are hidden by read-time rules instead
    (the mode is a setting, not an admin action)."""
    blocks = (await read_hiding(session)).blocks
    covered = Hiding(blocks, None).clause(only_suspended=True)
    remote = Account.domain != ""
    if covered is not None:
        await session.execute(
            update(Account).where(remote, Account.suspended_at.is_(None), covered)
            .values(suspended_at=utcnow(), suspension_origin=DOMAIN_SUSPENSION)
            .execution_options(synchronize_session=False))
    lifted = Account.suspension_origin == DOMAIN_SUSPENSION
    await session.execute(
        update(Account).where(remote, lifted, *(() if covered is None else (~covered,)))
        .values(suspended_at=None, suspension_origin=None)
        .execution_options(synchronize_session=False))


# ------------------------------------------------------------------------ reading blocks

@dataclass(frozen=True)
class Hiding:
    """The domain blocks and allows as read (sorted, hashable): what decides which remote
    accounts the public timelines leave out. A statement built from one may be kept and
    reused for as long as the blocks read the same (``server.services.timelines``)."""

    blocks: tuple[tuple[str, str], ...]
    allowed: tuple[str, ...] | None  # None: open federation (no allowlist)

    def clause(self, *, only_suspended: bool = False) -> ColumnElement[bool] | None:
        """A WHERE clause on ``Account``: accounts whose most specific covering block is a
        silence or a suspension (only suspensions with ``only_suspended``), and in
        allowlist mode those no allow covers; None when there are none."""
        not_allowed = (None if self.allowed is None
                       else (Account.domain != "") & ~accounts_covered_by(self.allowed))
        hiding_levels = (DomainBlockSeverity.SUSPEND.value,) if only_suspended else _HIDING
        hiding = [domain for domain, severity in self.blocks if severity in hiding_levels]
        if not hiding:
            return not_allowed
        # A more specific block of another severity under a hiding one is an exception.
        exceptions = [domain for domain, severity in self.blocks if severity not in hiding_levels
                      and any(covers(h, domain) and h != domain for h in hiding)]
        clause = accounts_covered_by(hiding)
        if exceptions:
            clause = clause & ~_covered_by_more_specific(hiding, exceptions)
        return clause if not_allowed is None else or_(clause, not_allowed)


async def read_hiding(session: AsyncSession) -> Hiding:
    """The blocks (and, in allowlist mode, the allows) as they are now: one or two reads."""
    rows = (await session.execute(select(DomainBlock.domain, DomainBlock.severity))).all()
    allowed = (tuple(sorted(await session.scalars(select(DomainAllow.domain))))
               if allowlist_mode(session) else None)
    return Hiding(tuple(sorted((str(domain), str(severity)) for domain, severity in rows)),
                  allowed)


async def _hidden_accounts(session: AsyncSession, *,
                           only_suspended: bool = False) -> ColumnElement[bool] | None:
    """A WHERE clause on ``Account``: accounts whose most specific covering block is a
    silence or a suspension (only suspensions with ``only_suspended``); None when no
    block is one."""
    return (await read_hiding(session)).clause(only_suspended=only_suspended)


def allowlist_mode(session: AsyncSession) -> bool:
    """Whether this database's server federates only with allowed domains
    (``EASEL_FEDERATION_MODE=allowlist``, carried in ``session.info`` by ``server.db``)."""
    return session.info.get("federation_mode") == "allowlist"


async def not_allowed_accounts(session: AsyncSession) -> ColumnElement[bool] | None:
    """In allowlist mode, a WHERE clause on ``Account``: the remote accounts no domain
    allow covers, which are treated as suspended (stored before the mode was chosen, or
    before their domain's allow was removed); None in open mode."""
    if not allowlist_mode(session):
        return None
    allowed = list(await session.scalars(select(DomainAllow.domain)))
    return (Account.domain != "") & ~accounts_covered_by(allowed)


async def domain_suspended(session: AsyncSession, domain: str) -> bool:
    """Whether the remote domain ``domain`` (``host[:port]``) is suspended: its most
    specific block is a suspension, or, in allowlist mode, no allow covers it."""
    candidates = domain_candidates(domain)
    if allowlist_mode(session) and await session.scalar(
            select(DomainAllow.id).where(DomainAllow.domain.in_(candidates)).limit(1)) is None:
        return True
    block = await deciding_block(session, domain)
    return block is not None and block.severity == DomainBlockSeverity.SUSPEND


def _covered_by_more_specific(hiding: Sequence[str], exceptions: Sequence[str]) -> ColumnElement[bool]:
    """Accounts whose most specific block is one of ``exceptions`` rather than a hiding
    block below it (``a.b.example`` hidden under an exception ``b.example`` stays hidden)."""
    clauses = []
    for exception in exceptions:
        deeper = [h for h in hiding if covers(exception, h) and h != exception]
        clause = accounts_covered_by([exception])
        if deeper:
            clause = clause & ~accounts_covered_by(deeper)
        clauses.append(clause)
    return or_(*clauses)


async def hidden_from_public_timelines(session: AsyncSession) -> ColumnElement[bool] | None:
    """A WHERE clause on ``Account``: the remote accounts public and hashtag timelines
    leave out (silenced or suspended domains, and in allowlist mode every domain not
    allowed); None when no domain is hidden so."""
    return await _hidden_accounts(session)
