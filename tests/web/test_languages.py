"""Pages in the browser's language (Accept-Language): English, German, French, Spanish,
with ``<html lang>`` set and dates in the language's one format; the printables too."""

from __future__ import annotations

import datetime as dt
import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from clinic.domain.bookings import Scheduler
from clinic.web.i18n import LANGUAGES, translations_folder
from tests.support.web import BOOKING, login

#: One phrase of each page the tests visit, per language.
EXPECTED = {
    "de": {"login": "Am Empfang anmelden", "nav": "Termin buchen", "day": "Tagesliste zum Drucken"},
    "fr": {
        "login": "Connexion à l'accueil",
        "nav": "Prendre un rendez-vous",
        "day": "Liste du jour à imprimer",
    },
    "es": {
        "login": "Iniciar sesión en la recepción",
        "nav": "Reservar una cita",
        "day": "Lista del día para imprimir",
    },
    "en": {
        "login": "Sign in to the front desk",
        "nav": "Book an exam",
        "day": "Printable day list",
    },
}


def _lang(html: str) -> str:
    found = re.search(r'<html lang="([a-z]+)"', html)
    assert found, "no <html lang>"
    return found.group(1)


@pytest.mark.parametrize("language", ["de", "fr", "es", "en"])
def test_pages_follow_accept_language(
    client: FlaskClient, users: None, scheduler: Scheduler, language: str
) -> None:
    header = {"Accept-Language": f"{language}-XX,{language};q=0.9,en;q=0.5"}
    page = client.get("/login", headers=header).get_data(as_text=True)
    assert _lang(page) == language
    assert EXPECTED[language]["login"] in page
    login(client, "alice")
    scheduler.book(dict(BOOKING, scheduled_start=f"{dt.date.today()}T09:30"), actor="t")
    for url in ("/", "/patients", "/book", "/procedures/1", "/?print=1"):
        response = client.get(url, headers=header)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert _lang(html) == language, url
    day = client.get("/", headers=header).get_data(as_text=True)
    assert EXPECTED[language]["nav"] in day and EXPECTED[language]["day"] in day


def test_other_languages_fall_back_to_english(client: FlaskClient) -> None:
    html = client.get("/login", headers={"Accept-Language": "it,pl;q=0.8"}).get_data(as_text=True)
    assert _lang(html) == "en" and "Sign in to the front desk" in html
    assert _lang(client.get("/login").get_data(as_text=True)) == "en"


def test_dates_and_messages_in_the_language(desk: FlaskClient, scheduler: Scheduler) -> None:
    proc = scheduler.book(BOOKING, actor="t")  # 2026-11-26 09:30, born 1970-05-01
    url = f"/procedures/{proc.id}"
    german = desk.get(url, headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Donnerstag, 26. November 2026" in german and "01.05.1970" in german
    french = desk.get(url, headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "jeudi 26 novembre 2026" in french and "01/05/1970" in french
    spanish = desk.get(url, headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "jueves, 26 de noviembre de 2026" in spanish and "1/5/1970" in spanish
    english = desk.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Thursday, November 26, 2026" in english and "5/1/1970" in english
    # The browser's region decides the order of day and month, as in its date fields.
    british = desk.get(url, headers={"Accept-Language": "en-GB,en;q=0.8"}).get_data(as_text=True)
    assert _lang(british) == "en" and "01/05/1970" in british
    swiss = desk.get(url, headers={"Accept-Language": "de-CH"}).get_data(as_text=True)
    assert _lang(swiss) == "de" and "01.05.1970" in swiss
    # Times on the 24-hour clock in every language.
    # (a 12-hour time would read "9:30 AM"; tokens and accession numbers hold random "AM"s)
    assert "09:30" in english and "09:30" in german
    assert not re.search(r"\d:\d\d\s*[AP]M\b", english)
    # Plurals and form messages.
    day = desk.get("/?date=2026-11-26", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "1 Untersuchung" in day and "exam(s)" not in day
    empty = desk.get("/?date=2026-11-27", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "0 examen" in empty and "0 exams" not in empty
    refused = desk.post(
        f"{url}/cancel",
        data={"reason": "", "csrf_token": _token(desk, url)},
        headers={"Accept-Language": "es"},
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Indique por qué se cancela" in text


def _token(client: FlaskClient, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_login_errors_translated(client: FlaskClient, users: None) -> None:
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found
    response = client.post(
        "/login",
        data={"name": "alice", "password": "wrong", "csrf_token": found.group(1)},
        headers={"Accept-Language": "de"},
    )
    assert response.status_code == 401
    assert "Benutzername oder Passwort stimmen nicht." in response.get_data(as_text=True)


def test_slip_in_the_language(desk: FlaskClient, scheduler: Scheduler) -> None:
    assert shutil.which("pdftotext"), "poppler-utils is needed"
    proc = scheduler.book(BOOKING, actor="t")
    pdf = desk.get(f"/procedures/{proc.id}/slip.pdf", headers={"Accept-Language": "de"})
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf.data, capture_output=True, check=True
    ).stdout.decode()
    assert "Termin" in text and "Geburtsdatum" in text and "01.05.1970" in text
    assert "26. November 2026" in text


def test_catalogs_are_compiled_and_complete() -> None:
    """Every language has a compiled catalog, and every message of the template is in it."""
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    folder = Path(translations_folder())
    with open(folder / "messages.pot", "rb") as handle:
        template = read_po(handle)
    wanted = {_key(m.id) for m in template if m.id}
    for language in LANGUAGES[1:]:
        with open(folder / language / "LC_MESSAGES" / "messages.mo", "rb") as handle:
            catalog = read_mo(handle)
        have = {_key(m.id) for m in catalog if m.id and m.string}
        assert wanted <= have, (language, sorted(map(str, wanted - have))[:5])
        # Every plural form is there: "3 exams" is translated too, not only "1 exam".
        translations = gettext.translation("messages", str(folder), [language])
        for message_id in wanted:
            if isinstance(message_id, tuple):
                singular, plural = message_id[:2]
                for count in (0, 1, 3, 1_000_000):
                    assert translations.ngettext(singular, plural, count) not in (
                        singular,
                        plural,
                    ), (language, singular, count)


def _key(message_id: object) -> object:
    """A catalog message's id as a set member (plural ids are sequences)."""
    return tuple(message_id) if isinstance(message_id, list | tuple) else message_id


def test_shipped_template_lists_every_marked_message() -> None:
    """Every message the code and templates mark is in clinic/translations/messages.pot
    (so in every catalog, by the test above): run the README's pybabel commands after
    adding words to a page."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.pofile import read_po

    repo = Path(__file__).resolve().parents[2]
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    marked = set()
    for folder, method in ((repo / "clinic", "python"), (repo / "templates", "jinja2")):
        pattern = "**.py" if method == "python" else "**.html"
        for _name, _line, message, _comments, _context in extract_from_dir(
            str(folder), [(pattern, method)], keywords=keywords
        ):
            marked.add(_key(message) if not isinstance(message, tuple) else message[:2])
    with open(Path(translations_folder()) / "messages.pot", "rb") as handle:
        shipped = {_key(m.id) for m in read_po(handle) if m.id}
    assert "Exam done" in marked and "Set up the front desk" in marked  # both kinds read
    assert marked - shipped == set()


def test_error_pages_in_the_language(desk: FlaskClient) -> None:
    missing = desk.get("/no-such-page", headers={"Accept-Language": "de"})
    html = missing.get_data(as_text=True)
    assert missing.status_code == 404 and _lang(html) == "de"
    assert "Nicht gefunden" in html and "Diese Seite gibt es nicht." in html
    booking = desk.get("/procedures/999", headers={"Accept-Language": "es"})
    assert booking.status_code == 404 and "No existe esa cita." in booking.get_data(as_text=True)
    # The API keeps its JSON answers.
    assert desk.get("/api/procedures/999").is_json
