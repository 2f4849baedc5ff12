"""Sign-in plumbing: the signed-in user, roles, failed-login throttling, the secret key."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Flask, abort, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import UserMixin, current_user

from clinic.store.models import User, UserRole

F = TypeVar("F", bound=Callable[..., Any])

SECRET_KEY_FILE = "secret_key"
#: The key in the signed session cookie that holds the id of the session's database row.
SESSION_ID_KEY = "_sid"


class WebUser(UserMixin):  # type: ignore[misc]
    """The signed-in member of staff as Flask-Login sees them.

    Parameters
    ----------
    user : User
        The stored user.
    """

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.name = user.name
        self.role = user.role
        self.active = user.active

    @property
    def is_active(self) -> bool:
        """Deactivated users cannot sign in or use a session they still hold."""
        return self.active

    @property
    def is_admin(self) -> bool:
        """Whether this user may use the administration pages."""
        return self.role == UserRole.ADMIN.value


def actor(channel: str = "web") -> str:
    """Return the audit-log name of the signed-in user, e.g. ``web:alice``."""
    name = getattr(current_user, "name", "") or "anonymous"
    return f"{channel}:{name}"


def login_required(view: F) -> F:
    """Send a visitor who is not signed in to the sign-in page (401 JSON for the API)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        return view(*args, **kwargs)

    return cast(F, wrapper)


def admin_required(view: F) -> F:
    """Refuse (403) a signed-in user who is not an administrator."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if not getattr(current_user, "is_admin", False):
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)


class LoginThrottle:
    """Counts failed sign-ins per user name and per client address and blocks bursts.

    Parameters
    ----------
    max_per_name : int
        Failures allowed for one user name within ``window`` seconds.
    max_per_address : int
        Failures allowed from one client address within ``window`` seconds.
    window : float
        The sliding window, in seconds.
    clock : callable
        Returns the current time in seconds (injectable for tests).
    """

    def __init__(
        self,
        max_per_name: int = 5,
        max_per_address: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_name = max_per_name
        self.max_per_address = max_per_address
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._unlocks: dict[str, object] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def _wait(self, name: str, address: str, now: float) -> int:
        """Seconds to wait (0: a try is allowed); the caller holds the lock."""
        waits = []
        for key, limit in (
            (f"n:{name.lower()}", self.max_per_name),
            (f"a:{address}", self.max_per_address),
        ):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(int(self.window - (now - times[0])) + 1)
        return max(waits, default=0)

    def retry_after(self, name: str, address: str) -> int:
        """Return the seconds to wait before another try, 0 when a try is allowed."""
        with self._lock:
            return self._wait(name, address, self.clock())

    def begin(self, name: str, address: str) -> tuple[int, float]:
        """Check and count one sign-in attempt in one step.

        The attempt is counted as a failure at once, before the password is
        checked, so that attempts racing in parallel cannot all pass the check
        before any of them is counted; :meth:`succeeded` takes it back.

        Returns
        -------
        tuple of (int, float)
            The seconds to wait (0 when the attempt may go ahead, and is then
            counted) and the attempt's time stamp, to hand to :meth:`succeeded`.
        """
        with self._lock:
            now = self.clock()
            wait = self._wait(name, address, now)
            if not wait:
                self._record(name, address, now)
            return wait, now

    def _record(self, name: str, address: str, now: float) -> None:
        for key in (f"n:{name.lower()}", f"a:{address}"):
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # bound memory under a spray of names
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def failed(self, name: str, address: str) -> None:
        """Record one failed sign-in (not needed after :meth:`begin`, which counts it)."""
        with self._lock:
            self._record(name, address, self.clock())

    def unlocked(self, name: str, at: object) -> None:
        """Forget a name's failures once when an administrator has unlocked it.

        ``at`` is the stored unlock time; the same value seen again changes nothing,
        so failures after the unlock count as usual.
        """
        if at is None:
            return
        with self._lock:
            key = name.lower()
            if self._unlocks.get(key) != at:
                self._unlocks[key] = at
                self._failures.pop(f"n:{key}", None)

    def succeeded(self, name: str, address: str | None = None, stamp: float | None = None) -> None:
        """Forget the failures of a user name after a good sign-in.

        With ``address`` and the ``stamp`` :meth:`begin` returned, the attempt it
        counted for that address is taken back as well.
        """
        with self._lock:
            self._failures.pop(f"n:{name.lower()}", None)
            if address is not None and stamp is not None:
                times = self._failures.get(f"a:{address}")
                if times is not None:
                    with contextlib.suppress(ValueError):  # already out of the window
                        times.remove(stamp)


class TlsAwareSessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie ``Secure`` whenever the request came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured so, or when this request is HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def load_secret_key(data_dir: Path) -> str:
    """Return the key that signs sessions, made once and kept in ``data_dir``.

    The file is created with mode 0600; an existing one is reused, so sessions
    survive a restart.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key
