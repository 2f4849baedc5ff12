"""Composition root: builds the store, the domain and the three doors, starts and stops them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO

from pynetdicom import evt
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from waitress import wasyncore

from clinic.config import Settings
from clinic.dicom.listener import (
    GuardedServer,
    policy_from_settings,
    set_tcp_nodelay,
    start_guarded_server,
)
from clinic.domain.bookings import Scheduler
from clinic.domain.catalog import Catalog
from clinic.domain.performed import PerformedSteps
from clinic.domain.print_jobs import PrintDesk
from clinic.domain.retention import RetentionWorker
from clinic.hl7.intake import OrderIntake
from clinic.hl7.mllp import MllpListener
from clinic.printing.archiver import Archiver
from clinic.printing.profiles import load_profiles
from clinic.printing.scp import PrintService, build_print_ae, print_handlers
from clinic.printing.spool import Spool, requeue
from clinic.store import migrate
from clinic.store.backup import hold_service_lock
from clinic.store.db import make_engine, make_session_factory, redact_database_errors
from clinic.store.models import PrintJob
from clinic.store.private import make_private
from clinic.web import create_app
from clinic.web.door import DoorLimits, create_web_server, tls_context
from clinic.worklist.access import restrict_worklist, worklist_admit
from clinic.worklist.diagnostics import QueryLogWriter
from clinic.worklist.mpps import MppsService, mpps_handlers
from clinic.worklist.scp import WorklistService, build_worklist_ae, worklist_handlers

log = logging.getLogger(__name__)


@dataclass
class ClinicServer:
    """The running service: web front desk, worklist listener and print listener.

    Use :meth:`start` then :meth:`stop`; ``web_port``, ``mwl_port`` and ``print_port``
    hold the bound ports (useful when the settings ask for port 0).
    """

    settings: Settings
    engine: Engine | None = None
    session_factory: sessionmaker[Session] | None = None
    scheduler: Scheduler | None = None
    web_port: int = 0
    mwl_port: int = 0
    print_port: int = 0
    hl7_port: int = 0
    _hl7: MllpListener | None = None
    _servers: list[GuardedServer] = field(default_factory=list)
    _web: Any = None
    _web_thread: threading.Thread | None = None
    _query_log: QueryLogWriter | None = None
    spool: Spool | None = None
    archiver: Archiver | None = None
    _retention: RetentionWorker | None = None
    _lock: BinaryIO | None = None

    def start(self) -> None:
        """Migrate the store, then start every listener (non-blocking)."""
        settings = self.settings
        redact_database_errors()  # whoever configured logging, no database message leaks
        # umask 0o077 from here on, and the folder's existing files made 0600 / 0700.
        make_private(settings.data_dir)
        # Held while the service runs: `clinic restore` refuses to overwrite its database.
        self._lock = hold_service_lock(settings.data_dir)
        self.engine = make_engine(settings.resolved_database_url)
        migrate.upgrade(self.engine)
        self.session_factory = make_session_factory(self.engine)
        self.scheduler = Scheduler(
            self.session_factory, settings.uid_root, settings.default_duration_minutes
        )
        self._query_log = QueryLogWriter(self.session_factory)

        service = WorklistService(self.session_factory, settings, self._query_log)
        find_aes = frozenset(settings.mwl_find_ae_titles)
        mpps_aes = frozenset(settings.mwl_mpps_ae_titles)
        mwl = start_guarded_server(
            build_worklist_ae(settings),
            (settings.host, settings.mwl_port),
            [
                *restrict_worklist(
                    [
                        *worklist_handlers(service),
                        *mpps_handlers(MppsService(PerformedSteps(self.session_factory))),
                    ],
                    find_aes,
                    mpps_aes,
                ),
                (evt.EVT_CONN_OPEN, set_tcp_nodelay),
            ],
            policy_from_settings(settings.worklist_listener, worklist_admit(find_aes, mpps_aes)),
        )
        self._servers.append(mwl)
        self.mwl_port = mwl.server_address[1]

        profiles = load_profiles(settings)
        self.spool = Spool(self.session_factory, settings.data_dir, profiles, settings.uid_root)
        self.spool.start()
        # Its own thread: a PACS that is down never holds up printing.
        self.archiver = Archiver(
            self.session_factory,
            self.spool.root,
            profiles,
            settings.uid_root,
            refile=self.spool.refile,
        )
        self.archiver.start()
        spool, archiver = self.spool, self.archiver

        def wake() -> None:
            spool.wake()
            archiver.wake()

        desk = PrintDesk(
            self.session_factory,
            {ae: str(p.archive) if p.archive else "" for ae, p in profiles.items()},
            wake,
        )
        printing = PrintService(
            profiles,
            self.spool,
            settings.uid_root,
            incoming=settings.data_dir / "incoming",
            max_association_image_bytes=settings.print_max_association_image_bytes,
            min_free_mb=settings.print_min_free_mb,
            # One service per data folder on SQLite: whatever is there at start is stale.
            stale_after=(
                0.0 if self.engine.dialect.name == "sqlite" else settings.association_timeout
            ),
        )
        printer = start_guarded_server(
            build_print_ae(settings),
            (settings.host, settings.print_port),
            [*print_handlers(printing), (evt.EVT_CONN_OPEN, set_tcp_nodelay)],
            policy_from_settings(
                settings.print_listener, printing.admits, settings.print_max_image_box_bytes
            ),
        )
        self._servers.append(printer)
        self.print_port = printer.server_address[1]

        factory = self.session_factory
        app = create_app(
            settings,
            self.scheduler,
            reprint=partial(_reprint, factory, self.spool),
            refile=self.spool.refile,
            print_desk=desk,
        )
        tls = (
            tls_context(settings.web_tls_cert, settings.web_tls_key)
            if settings.web_tls_cert
            else None
        )
        self._web = create_web_server(
            app,
            settings.host,
            settings.web_port,
            DoorLimits(
                max_connections=settings.web_max_connections,
                max_connections_per_address=settings.web_max_connections_per_address,
                idle_timeout=settings.web_idle_timeout,
                tls_handshake_timeout=settings.web_tls_handshake_timeout,
            ),
            tls,
        )
        self.web_port = int(self._web.effective_port)
        self._web_thread = threading.Thread(target=self._web.run, name="web", daemon=True)
        self._web_thread.start()

        self._hl7 = MllpListener(
            settings.host,
            settings.hl7_port,
            OrderIntake(
                self.scheduler,
                Catalog(self.session_factory),
                order_response=settings.hl7_order_response,
            ),
            max_message_bytes=settings.hl7_max_message_bytes,
            read_timeout=settings.hl7_read_timeout,
            idle_timeout=settings.hl7_idle_timeout,
            frame_timeout=settings.hl7_frame_timeout,
            max_connections=settings.hl7_max_connections,
            max_connections_per_address=settings.hl7_max_connections_per_address,
        )
        self._hl7.start()
        self.hl7_port = self._hl7.port
        self._retention = RetentionWorker(factory, settings.data_dir, settings.retention_days)
        self._retention.start()

        host = settings.host
        scheme = "https" if tls is not None else "http"
        log.info("web front desk listening on %s://%s:%d/", scheme, host, self.web_port)
        log.info("worklist SCP %s listening on %s:%d", settings.mwl_ae_title, host, self.mwl_port)
        log.info(
            "print SCP %s listening on %s:%d", settings.printer_ae_title, host, self.print_port
        )
        log.info("HL7 MLLP listener listening on %s:%d", host, self.hl7_port)

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let running associations finish (abort after ``grace`` s), close.

        The four doors stop at the same time, each in its own thread; the workers
        and the store are closed once every door has stopped.
        """
        doors: list[tuple[str, Callable[[], None]]] = []
        if self._hl7 is not None:
            doors.append(("hl7", partial(self._hl7.stop, grace)))
            self._hl7 = None
        for server in self._servers:
            doors.append((server.policy.name, partial(_stop_dicom, server, grace)))
        self._servers.clear()
        if self._web is not None:
            doors.append(("web", partial(_stop_web, self._web, self._web_thread)))
            self._web = None
            self._web_thread = None
        _run_all(doors)
        if self._retention is not None:
            self._retention.stop()
            self._retention = None
        if self.archiver is not None:
            self.archiver.stop()
            self.archiver = None
        if self.spool is not None:
            self.spool.stop()
            self.spool = None
        if self._query_log is not None:
            self._query_log.close()
        if self.engine is not None:
            self.engine.dispose()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        log.info("clinic stopped")


def _run_all(steps: list[tuple[str, Callable[[], None]]]) -> None:
    """Run ``steps`` side by side and wait for all of them; a failing one is logged."""

    def run(name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            log.exception("stopping %s failed", name)

    threads = [
        threading.Thread(target=run, args=step, name=f"stop-{step[0]}", daemon=True)
        for step in steps
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _stop_dicom(server: GuardedServer, grace: float) -> None:
    """Stop accepting; wait up to ``grace`` s for associations to end, then abort the rest."""
    ae = server.ae
    server.shutdown()
    deadline = time.monotonic() + grace
    for assoc in ae.active_associations:
        # Each association is a thread: joining wakes the moment it ends.
        assoc.join(max(0.0, deadline - time.monotonic()))
    for assoc in ae.active_associations:
        assoc.abort()


def _stop_web(web: Any, thread: threading.Thread | None) -> None:
    """Let requests in progress finish, then close the web door's sockets."""
    web.task_dispatcher.shutdown()
    if thread is not None and thread.is_alive():
        # Closed by the loop's own thread, woken through waitress's trigger: the loop
        # then finds nothing left to serve and ends at once (not after its 1 s poll).
        web.trigger.pull_trigger(lambda: wasyncore.close_all(web._map))
        thread.join(timeout=5)
    wasyncore.close_all(web._map)


def _reprint(
    factory: sessionmaker[Session], spool: Spool, job_id: int, actor: str
) -> PrintJob | None:
    """Queue job ``job_id`` again (audited as ``actor``) and wake the spool worker."""
    job = requeue(factory, job_id, actor)
    spool.wake()
    return job
