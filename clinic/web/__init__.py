"""The web door: the front desk application and its REST API."""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask, render_template

from clinic.config import Settings
from clinic.scheduling import Scheduler


def templates_folder() -> str:
    """Where the Jinja templates are: the source tree's, or the installed copy."""
    source = Path(__file__).resolve().parents[2] / "templates"
    if source.is_dir():
        return str(source)
    return str(Path(sys.prefix) / "share" / "clinic" / "templates")


def create_app(settings: Settings, scheduler: Scheduler) -> Flask:
    """Build the Flask application.

    Parameters
    ----------
    settings : Settings
        The service's configuration.
    scheduler : Scheduler
        The domain service every view goes through.
    """
    app = Flask(__name__, template_folder=templates_folder())
    app.config["CLINIC_SETTINGS"] = settings
    app.extensions["clinic.scheduler"] = scheduler

    @app.get("/")
    def index() -> str:
        return render_template("index.html", settings=settings)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
