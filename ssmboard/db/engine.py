"""Opening the store: URL, safety checks, migrations, engine and short sessions.

Opening is careful because the store holds results that took GPU hours to produce:
a file that is not an SQLite database, a database of another application, or one written
by a newer ssmboard is refused with :class:`StoreError` before anything writes to it.
Only an empty or older ssmboard database is migrated (to the shipped head revision).
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ssmboard import config
from ssmboard.db import migrate
from ssmboard.errors import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

_SQLITE_HEADER = b"SQLite format 3\x00"
_FIX = "point SSMBOARD_DB at another file (or move this one away)"


@dataclass
class Store:
    """An opened, migrated store: its URL, engine and session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker
    revision: str
    path: Path | None = None  # the SQLite file, when it is one
    state: dict = field(default_factory=dict)  # per-store caches (e.g. built-ins ensured)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A short session: commits when the block ends, rolls back on an exception."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def write(self, fn: Callable[[Session], T], attempts: int = 5) -> T:
        """Run ``fn(session)`` in one transaction, retrying when a concurrent writer wins a race.

        Another process may insert the same unique row between our read and our write
        (IntegrityError) or hold the write lock (OperationalError 'locked'); ``fn`` runs again
        from scratch in a fresh session, so it must read what it needs inside.
        """
        last: Exception | None = None
        for i in range(attempts):
            try:
                with self.session() as s:
                    return fn(s)
            except IntegrityError as exc:
                last = exc
            except OperationalError as exc:
                if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                    raise StoreError(f"database error on {redact(self.url)}: {exc.orig}") from exc
                last = exc
            time.sleep(0.05 * (i + 1))
        raise StoreError(
            f"could not write to {redact(self.url)} after {attempts} attempts ({last}); "
            "another process may be holding the database, try again"
        ) from last


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and `db info`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def get_store(url: str | None = None) -> Store:
    """The store at ``url`` (default :func:`ssmboard.config.db_url`), opened and migrated once per process."""
    url = url or config.db_url()
    with _lock:
        store = _stores.get(url)
        if store is None:
            store = _open(url)
            _stores[url] = store
        return store


def dispose_stores() -> None:
    """Close every engine this process opened (tests call this between databases)."""
    with _lock:
        for store in _stores.values():
            store.engine.dispose()
        _stores.clear()


# ---------------------------------------------------------------------------------------
def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {url!r} ({exc}); set SSMBOARD_DB to a SQLAlchemy URL such "
            "as sqlite:////home/me/ssmboard.db, or unset it to use $SSMBOARD_HOME/ssmboard.db"
        ) from None


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    u = make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() != "sqlite":
        return None
    db = u.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser().resolve()


def _probe_sqlite_file(path: Path) -> str | None:
    """Read-only look at an existing file: its ssmboard revision, or StoreError if not ours."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    if path.is_dir():
        raise StoreError(f"the database path {path} is a directory; {_FIX}")
    with open(path, "rb") as fh:
        header = fh.read(len(_SQLITE_HEADER))
    if header != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not an SQLite database (its first bytes are not the SQLite header); "
            f"ssmboard left it untouched: {_FIX}"
        )
    try:
        # Without a -wal file the database is all in the main file: open it immutable, which
        # creates no -wal/-shm side files. With one (the store is in use), a read-only open.
        wal = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"
        con = sqlite3.connect(f"file:{quote(str(path))}?{mode}", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "alembic_version" in tables:
                revs = [r[0] for r in con.execute("SELECT version_num FROM alembic_version")]
            else:
                revs = []
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} cannot be read as an SQLite database ({exc}); ssmboard left it untouched: {_FIX}"
        ) from None
    if "alembic_version" not in tables:
        other = sorted(t for t in tables if not t.startswith("sqlite_"))
        if other:
            raise StoreError(
                f"{path} is an SQLite database of another application (tables: "
                f"{', '.join(other[:8])}) with no ssmboard schema version; ssmboard left it untouched: {_FIX}"
            )
        return None
    return _check_revisions(str(path), revs)


def _check_revisions(where: str, revs: list[str]) -> str | None:
    if not revs:
        return None
    known = migrate.known_revisions()
    if len(revs) > 1 or revs[0] not in known:
        raise StoreError(
            f"the database {where} has schema revision {', '.join(revs)}, which this ssmboard "
            f"does not know (it knows up to {migrate.head_revision()}): it was written by a newer "
            "ssmboard. Upgrade ssmboard (pip install -U ssmboard / git pull), or point SSMBOARD_DB "
            "at another file. The database was not modified."
        )
    return revs[0]


def _on_sqlite_connect(wal: bool):
    def setup(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return setup


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """Serialise first-use migration between processes sharing one SQLite file."""
    if path is None:
        yield
        return
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open(url: str) -> Store:
    sa_url = _parse(url)
    is_sqlite = sa_url.get_backend_name() == "sqlite"
    path = sqlite_path(sa_url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the database {path} ({exc}); set SSMBOARD_HOME "
                             "or SSMBOARD_DB to a writable place") from None
        _probe_sqlite_file(path)

    kwargs: dict = {}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if path is None:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
    try:
        engine = create_engine(sa_url, **kwargs)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise StoreError(
            f"cannot open database URL {redact(url)} ({exc}); install its driver or use a sqlite:/// URL"
        ) from None
    if is_sqlite:
        event.listen(engine, "connect", _on_sqlite_connect(wal=path is not None))

    try:
        with _file_lock(path):
            with engine.connect() as conn:
                if path is None:  # other databases: check before touching anything
                    names = set(inspect(conn).get_table_names())
                    current = migrate.current_revision(conn) if "alembic_version" in names else None
                    if current is None and names - {"alembic_version"}:
                        raise StoreError(
                            f"the database {redact(url)} holds tables of another application "
                            f"({', '.join(sorted(names)[:8])}) and no ssmboard schema version; {_FIX}"
                        )
                    if current is not None:
                        _check_revisions(redact(url), [current])
                else:
                    _probe_sqlite_file(path)  # again, now that we hold the lock
                    current = migrate.current_revision(conn)
                    _check_revisions(str(path), [current] if current else [])
                head = migrate.head_revision()
                if current != head:
                    log.info("migrating %s from %s to %s", redact(url), current or "empty", head)
                    migrate.upgrade(conn, "head")
    except StoreError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()  # one line: the driver's reason
        raise StoreError(f"cannot open the database {redact(url)}: {reason[0] if reason else type(exc).__name__}; "
                         "check SSMBOARD_DB (host, port, user, password) and that the server is running") from None
    except Exception as exc:  # e.g. alembic.util.CommandError during a migration
        engine.dispose()
        if type(exc).__module__.startswith("alembic"):
            raise StoreError(f"cannot migrate the database {redact(url)}: {exc}") from None
        raise
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    return Store(url=url, engine=engine, sessions=sessions, revision=head, path=path)
