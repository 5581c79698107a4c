"""What the running app holds: settings, database, job runner and queue, in one object."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from server.db import Database
from server.queue.broker import JobQueue
from server.queue.runner import JobRunner
from server.settings import Settings
from server.storage import LocalStorage
from server.urls import Urls


@dataclass
class EaselState:
    settings: Settings
    db: Database
    runner: JobRunner
    queue: JobQueue
    urls: Urls
    storage: LocalStorage


def easel(request: Request) -> EaselState:
    state: EaselState = request.app.state.easel
    return state
