"""Database models. The schema itself changes only through ``migrations/``."""

from server.models.account import Account
from server.models.base import Base, UTCDateTime
from server.models.job import JOB_TRANSITIONS, Job, JobState
from server.models.user import User

__all__ = ["JOB_TRANSITIONS", "Account", "Base", "Job", "JobState", "UTCDateTime", "User"]
