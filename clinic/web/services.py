"""What the web door's blueprints work with, in one typed object.

:func:`clinic.web.create_app` builds one :class:`Services` and keeps it on the app;
a view asks for it with :func:`services` instead of looking names up in
``current_app.extensions`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from clinic.config import Settings
from clinic.domain.accounts import Accounts
from clinic.domain.bookings import Scheduler
from clinic.domain.calendar import Calendar
from clinic.domain.catalog import Catalog

if TYPE_CHECKING:
    from clinic.domain.print_jobs import PrintDesk
    from clinic.web.security import LoginThrottle

#: The key :class:`Services` is kept under in ``app.extensions``.
EXTENSION = "clinic"


@dataclass(frozen=True)
class Services:
    """The domain services and hooks the web door's views use.

    Attributes
    ----------
    settings : Settings
        The service's settings.
    sessions : sessionmaker
        The store.
    scheduler, accounts, catalog, calendar : domain services
        Bookings, users and tokens, the procedure catalog and stations, the calendar.
    throttle : LoginThrottle
        Failed sign-in counter.
    reprint : callable or None
        Queues a print job again given its id and who asks; ``None``: no reprint.
    refile : callable or None
        Files a printed job's PDF again after its patient link changed.
    print_desk : PrintDesk or None
        The hold queue and "send again" to the archive.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    scheduler: Scheduler
    accounts: Accounts
    catalog: Catalog
    calendar: Calendar
    throttle: LoginThrottle
    reprint: Callable[[int, str], object] | None
    refile: Callable[[int], object] | None
    print_desk: PrintDesk | None


def services() -> Services:
    """The current app's :class:`Services` (inside a request or app context)."""
    return cast(Services, current_app.extensions[EXTENSION])
