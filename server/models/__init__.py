"""Database models. The schema itself changes only through ``migrations/``."""

from server.models.account import Account
from server.models.base import Base, UTCDateTime
from server.models.federation import (
    Activity,
    Delivery,
    DomainBlock,
    DomainBlockSeverity,
    InboxItem,
    InboxOutcome,
    Instance,
    Report,
    Tombstone,
)
from server.models.job import JOB_TRANSITIONS, Job, JobState
from server.models.media import MediaAttachment, MediaState, ProtectionState
from server.models.oauth import OAuthApplication, OAuthAuthorizationCode, OAuthToken
from server.models.portfolio import (
    TAG_KINDS,
    PortfolioTag,
    PortfolioTagAlias,
    Project,
    ProjectWork,
    StatusPin,
    Work,
    WorkTag,
)
from server.models.social import NOTIFICATION_TYPES, Bookmark, Favourite, Follow, FollowRequest, Notification
from server.models.status import (
    VISIBILITIES,
    IdempotencyKey,
    Mention,
    Status,
    StatusAlias,
    StatusTag,
    Tag,
)
from server.models.user import User

__all__ = [
    "JOB_TRANSITIONS",
    "NOTIFICATION_TYPES",
    "TAG_KINDS",
    "VISIBILITIES",
    "Account",
    "Activity",
    "Base",
    "Bookmark",
    "Delivery",
    "DomainBlock",
    "DomainBlockSeverity",
    "Favourite",
    "Follow",
    "FollowRequest",
    "IdempotencyKey",
    "InboxItem",
    "InboxOutcome",
    "Instance",
    "Job",
    "JobState",
    "MediaAttachment",
    "MediaState",
    "Mention",
    "Notification",
    "OAuthApplication",
    "OAuthAuthorizationCode",
    "OAuthToken",
    "PortfolioTag",
    "PortfolioTagAlias",
    "Project",
    "ProjectWork",
    "ProtectionState",
    "Report",
    "Status",
    "StatusAlias",
    "StatusPin",
    "StatusTag",
    "Tag",
    "Tombstone",
    "UTCDateTime",
    "User",
    "Work",
    "WorkTag",
]
