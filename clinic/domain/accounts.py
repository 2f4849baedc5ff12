"""Staff accounts and REST API tokens: create, check, change; every change audited.

Passwords are kept only as Werkzeug scrypt hashes and tokens only as SHA-256
digests. Nothing here knows about Flask: the web door and the command line both
call :class:`Accounts`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from clinic.domain.audit import audit
from clinic.domain.errors import AccountDeactivated, NotFound, ValidationError
from clinic.store.db import transaction
from clinic.store.models import ApiToken, User, UserRole, WebSession, utcnow

ROLES = tuple(r.value for r in UserRole)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
TOKEN_PREFIX_LENGTH = 8
#: A signed-in session ends this long after its last use.
SESSION_LIFETIME = dt.timedelta(hours=12)
#: A session's last use is written at most this often (one write, not one per request).
SESSION_TOUCH_INTERVAL = dt.timedelta(minutes=1)
#: Werkzeug's scrypt at its default cost (N=2**15, r=8, p=1): slow on purpose. The hash
#: names its own cost, so checking a stored hash always uses the cost it was made with.
PASSWORD_HASH_METHOD = "scrypt:32768:8:1"


def hash_password(password: str) -> str:
    """Return the scrypt hash of ``password`` in Werkzeug's self-describing form."""
    return generate_password_hash(password, method=PASSWORD_HASH_METHOD)


@functools.cache
def _dummy_hash(method: str) -> str:
    """A hash to check against when the user does not exist, so the answer takes as long."""
    return generate_password_hash("not a real password", method=method)


def _user(session: Session, user_id: int) -> User:
    """The user ``user_id``; :class:`NotFound` when there is none."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(user_id)
    return user


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str | None:
    """Check a user name; return a message, or ``None`` when it is acceptable."""
    if not name:
        return "is required"
    if not _NAME.match(name):
        return "may use letters, digits and . _ @ - only (at most 64)"
    return None


def check_password(password: str) -> str | None:
    """Check a new password's length; return a message, or ``None`` when acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


class Accounts:
    """Users and API tokens in the store.

    Parameters
    ----------
    session_factory : sessionmaker
        The store.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        _dummy_hash(PASSWORD_HASH_METHOD)  # made now: the first unknown name takes no longer

    # -- users -----------------------------------------------------------------------

    def create_user(self, name: str, role: str, password: str, actor: str) -> User:
        """Create a user.

        Parameters
        ----------
        name : str
            The sign-in name (letters, digits, ``. _ @ -``).
        role : str
            ``frontdesk`` or ``admin``.
        password : str
            The password in clear; only its hash is kept.
        actor : str
            Who creates the user, for the audit log.

        Returns
        -------
        User
            The stored user.

        Raises
        ------
        ValidationError
            Naming each bad field (``name``, ``role``, ``password``).
        """
        name = name.strip()
        errors: dict[str, str] = {}
        problem = check_name(name)
        if problem:
            errors["name"] = problem
        if role not in ROLES:
            errors["role"] = f"must be one of {', '.join(ROLES)}"
        problem = check_password(password)
        if problem:
            errors["password"] = problem
        if errors:
            raise ValidationError(errors)
        with transaction(self.session_factory) as session:
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                raise ValidationError({"name": "is already taken"})
            user = User(name=name, role=role, password_hash=hash_password(password), active=True)
            session.add(user)
            session.flush()
            audit(session, actor, "create", "user", user.id, {"name": name, "role": role})
            return user

    def get_user(self, user_id: int) -> User | None:
        """Return the user with ``user_id``, or ``None``."""
        with self.session_factory() as session:
            return session.get(User, user_id)

    def find_user(self, name: str) -> User | None:
        """Return the user called ``name``, or ``None``."""
        with self.session_factory() as session:
            return session.scalar(select(User).where(User.name == name))

    def list_users(self) -> list[User]:
        """Return every user, by name."""
        with self.session_factory() as session:
            return list(session.scalars(select(User).order_by(User.name)))

    def authenticate(self, name: str, password: str) -> User | None:
        """Return the active user whose name and password match, else ``None``.

        A successful sign-in is recorded (``last_login_at``) and audited.

        Raises
        ------
        AccountDeactivated
            The password is right but the user is deactivated (only someone who
            knows the password learns that).
        """
        with transaction(self.session_factory) as session:
            user = session.scalar(select(User).where(User.name == name.strip()))
            if user is None:
                check_password_hash(_dummy_hash(PASSWORD_HASH_METHOD), password)
                return None
            if not check_password_hash(user.password_hash, password):
                return None
            if not user.active:
                raise AccountDeactivated(user.id)
            user.last_login_at = utcnow()
            audit(session, user.name, "login", "user", user.id, {})
            return user

    def update_user(
        self,
        user_id: int,
        actor: str,
        *,
        role: str | None = None,
        active: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change a user's role, active flag or password.

        Raises
        ------
        NotFound
            No such user.
        ValidationError
            A bad role or password.
        """
        errors: dict[str, str] = {}
        if role is not None and role not in ROLES:
            errors["role"] = f"must be one of {', '.join(ROLES)}"
        if password:
            problem = check_password(password)
            if problem:
                errors["password"] = problem
        if errors:
            raise ValidationError(errors)
        with transaction(self.session_factory) as session:
            user = _user(session, user_id)
            changes: dict[str, object] = {}
            if role is not None and role != user.role:
                changes["role"] = [user.role, role]
                user.role = role
            if active is not None and active != user.active:
                changes["active"] = [user.active, active]
                user.active = active
            if password:
                changes["password"] = "changed"
                user.password_hash = hash_password(password)
            if password or active is False:
                # A new password or a blocked account ends every session at once.
                ended = _end_sessions(session, user.id)
                if ended:
                    changes["sessions_ended"] = ended
            if changes:
                audit(session, actor, "update", "user", user.id, changes)
            return user

    # -- browser sessions ------------------------------------------------------------

    def start_session(self, user_id: int, lifetime: dt.timedelta = SESSION_LIFETIME) -> str:
        """Open a browser session for a user who just signed in; return its id.

        Only the id's SHA-256 digest is stored. Sessions unused for ``lifetime`` are
        removed on the way.
        """
        sid = secrets.token_urlsafe(32)
        now = utcnow()
        with transaction(self.session_factory) as session:
            session.execute(delete(WebSession).where(WebSession.last_seen_at < now - lifetime))
            session.add(
                WebSession(
                    token_hash=token_digest(sid), user_id=user_id, created_at=now, last_seen_at=now
                )
            )
        return sid

    def session_user(
        self, sid: str, user_id: int, lifetime: dt.timedelta = SESSION_LIFETIME
    ) -> User | None:
        """Return the active user whose open session ``sid`` is, else ``None``.

        ``None`` too when the session was ended (sign-out, password change, "sign out
        everywhere"), was not used for ``lifetime``, or belongs to another user than
        ``user_id``. A session in use is kept open (its last use written once a minute).
        """
        if not sid:
            return None
        now = utcnow()
        digest = token_digest(sid)
        with self.session_factory() as session:
            row = session.scalar(select(WebSession).where(WebSession.token_hash == digest))
            if row is None or row.user_id != user_id or row.last_seen_at < now - lifetime:
                return None
            user = session.get(User, row.user_id)
            if user is None or not user.active:
                return None
            if now - row.last_seen_at >= SESSION_TOUCH_INTERVAL:
                row.last_seen_at = now
                session.commit()
            return user

    def end_session(self, sid: str) -> None:
        """End one browser session (nothing happens when it is already gone)."""
        with transaction(self.session_factory) as session:
            session.execute(delete(WebSession).where(WebSession.token_hash == token_digest(sid)))

    def end_sessions(self, user_id: int, actor: str, reason: str) -> int:
        """End every browser session of a user at once, audited; return how many.

        Parameters
        ----------
        user_id : int
            Whose sessions.
        actor : str
            Who ends them, for the audit log.
        reason : str
            Why: ``sign-out`` or ``sign out everywhere``.

        Raises
        ------
        NotFound
            No such user.
        """
        with transaction(self.session_factory) as session:
            _user(session, user_id)  # NotFound when there is no such user
            ended = _end_sessions(session, user_id)
            audit(
                session, actor, "end_sessions", "user", user_id, {"sessions": ended, "why": reason}
            )
            return ended

    def count_sessions(self, user_id: int, lifetime: dt.timedelta = SESSION_LIFETIME) -> int:
        """How many browser sessions of a user are open."""
        since = utcnow() - lifetime
        with self.session_factory() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(WebSession)
                    .where(WebSession.user_id == user_id, WebSession.last_seen_at >= since)
                )
                or 0
            )

    def user_id_for(self, name: str) -> int:
        """The id of the user called ``name``.

        Raises
        ------
        NotFound
            No such user.
        """
        user = self.find_user(name.strip())
        if user is None:
            raise NotFound(name)
        return user.id

    def unlock(self, user_id: int, actor: str) -> User:
        """Let a user sign in again at once after too many failed tries (audited).

        The failures counted before now stop blocking the user's name; a running
        service reads the time at the next sign-in attempt.

        Raises
        ------
        NotFound
            No such user.
        """
        with transaction(self.session_factory) as session:
            user = _user(session, user_id)
            user.unlocked_at = utcnow()
            audit(session, actor, "unlock", "user", user.id, {})
            return user

    def unlocked_at(self, name: str) -> dt.datetime | None:
        """When user ``name`` was last unlocked (``None``: never, or no such user)."""
        with self.session_factory() as session:
            value: dt.datetime | None = session.scalar(
                select(User.unlocked_at).where(User.name == name.strip())
            )
            return value

    # -- tokens ----------------------------------------------------------------------

    def create_token(self, name: str, actor: str) -> str:
        """Create an API token for user ``name`` and return it (shown only once).

        Raises
        ------
        NotFound
            No such user.
        """
        token = secrets.token_urlsafe(32)
        with transaction(self.session_factory) as session:
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotFound(name)
            row = ApiToken(
                user_id=user.id,
                token_hash=token_digest(token),
                prefix=token[:TOKEN_PREFIX_LENGTH],
            )
            session.add(row)
            session.flush()
            audit(session, actor, "create", "api_token", row.id, {"user": user.name})
        return token

    def user_for_token(self, token: str) -> User | None:
        """Return the active user a valid, unrevoked token belongs to, else ``None``."""
        if not token:
            return None
        with self.session_factory() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
            if row is None or row.revoked_at is not None or not row.user.active:
                return None
            return row.user

    def list_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        """Return tokens (of one user when given), newest first."""
        stmt = select(ApiToken).order_by(ApiToken.id.desc())
        if user_id is not None:
            stmt = stmt.where(ApiToken.user_id == user_id)
        with self.session_factory() as session:
            return list(session.scalars(stmt).unique())

    def revoke_token(self, token_id: int, actor: str) -> int:
        """Revoke a token; it stops working at once. Return the id of its user.

        Raises
        ------
        NotFound
            No such token.
        """
        with transaction(self.session_factory) as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(token_id)
            if row.revoked_at is None:
                row.revoked_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                audit(session, actor, "revoke", "api_token", row.id, {"user": row.user.name})
            return row.user_id


def _end_sessions(session: Session, user_id: int) -> int:
    """Delete every browser session of a user in the caller's transaction; return how many."""
    ids = list(session.scalars(select(WebSession.id).where(WebSession.user_id == user_id)))
    if ids:
        session.execute(delete(WebSession).where(WebSession.id.in_(ids)))
    return len(ids)
