"""The front desk's forms (Flask-WTF: every one carries a CSRF token).

Messages are written the way a receptionist would say them.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from clinic.config import CHARACTER_SETS
from clinic.domain.calendar import WEEKDAY_NAMES, WEEKDAYS
from clinic.domain.fields import BY_NAME, MAX_DURATION_MINUTES, PRIORITIES, SEXES

try:  # WTForms 3.3 wants SelectChoice objects; older versions take (value, label) pairs
    from wtforms.fields.choices import SelectChoice
except ImportError:  # pragma: no cover - older WTForms
    SelectChoice = None


def options(pairs: list[tuple[str, str]]) -> list[Any]:
    """Choices for a select field from ``(value, label)`` pairs, for any WTForms 3."""
    if SelectChoice is None:
        return list(pairs)
    return [SelectChoice(value, label) for value, label in pairs]


_SEX_LABELS = {"F": _l("Female"), "M": _l("Male"), "O": _l("Other")}
PRIORITY_LABELS = {
    "STAT": _l("Immediately (STAT)"),
    "HIGH": _l("High"),
    "ROUTINE": _l("Routine"),
    "MEDIUM": _l("Medium"),
    "LOW": _l("Low"),
}
_ID_MAX = BY_NAME["patient_id"].max_length
_DESCRIPTION_MAX = BY_NAME["procedure_description"].max_length
_NOTES_MAX = BY_NAME["notes"].max_length
# The values come from the booking field table; the forms only add the words people read.
SEX_CHOICES = [("", _l("Not known")), *((code, _SEX_LABELS[code]) for code in sorted(SEXES))]
PRIORITY_CHOICES = [("", _l("Normal")), *((code, PRIORITY_LABELS[code]) for code in PRIORITIES)]
ROLE_CHOICES = [("frontdesk", _l("Front desk")), ("admin", _l("Administrator"))]
_CHARSET_LABELS = {
    "ISO_IR 192": "Unicode UTF-8",
    "ISO_IR 100": "Latin-1, Western Europe",
    "ISO_IR 101": "Latin-2, Central Europe",
    "ISO_IR 109": "Latin-3",
    "ISO_IR 110": "Latin-4, Baltic",
    "ISO_IR 144": "Cyrillic",
    "ISO_IR 127": "Arabic",
    "ISO_IR 126": "Greek",
    "ISO_IR 138": "Hebrew",
    "ISO_IR 148": "Latin-5, Turkish",
    "ISO_IR 203": "Latin-9",
    "ISO_IR 166": "Thai",
    "GB18030": "Chinese GB18030",
    "GBK": "Chinese GBK",
    "ISO 2022 IR 87": "Japanese, kanji (ISO 2022)",
    "ISO 2022 IR 13": "Japanese, katakana and kanji (ISO 2022)",
    "ISO 2022 IR 149": "Korean (ISO 2022)",
    "ISO 2022 IR 58": "Chinese GB 2312 (ISO 2022)",
}
CHARSET_CHOICES = [("", _l("Service default"))] + [
    (name, f"{_CHARSET_LABELS.get(name, name)} ({name})") for name in CHARACTER_SETS
]


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Sign in."""

    name = StringField(
        _l("User name"),
        validators=[DataRequired(_l("Please enter your user name."))],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Please enter your password."))],
        render_kw={"autocomplete": "current-password"},
    )


class BookingForm(FlaskForm):  # type: ignore[misc]
    """Book an exam: the patient, the procedure, when and where."""

    patient_id = StringField(
        _l("Patient ID"),
        validators=[
            Optional(),
            Length(
                max=_ID_MAX,
                message=_l("The patient ID is too long (%(num)d at most).", num=_ID_MAX),
            ),
        ],
        description=_l("Leave empty for a new patient: the clinic gives one."),
    )
    family_name = StringField(
        _l("Family name"),
        validators=[
            DataRequired(_l("Please enter the patient's family name.")),
            Length(max=64, message=_l("The family name is too long (64 letters at most).")),
        ],
    )
    given_name = StringField(
        _l("Given name"),
        validators=[Optional(), Length(max=64, message=_l("The given name is too long."))],
    )
    birth_date = DateField(
        _l("Date of birth"),
        validators=[Optional()],
        render_kw={"max": "9999-12-31"},
    )
    sex = SelectField(_l("Sex"), choices=options(SEX_CHOICES), validators=[Optional()])
    procedure = SelectField(_l("Procedure"), choices=[], validate_choice=False)
    modality = StringField(
        _l("Modality"),
        validators=[Optional(), Length(max=16)],
        description=_l("Only for a procedure that is not in the list, e.g. CR, IO, PX, US."),
    )
    description = StringField(
        _l("Description"),
        validators=[
            Optional(),
            Length(max=_DESCRIPTION_MAX, message=_l("The description is too long.")),
        ],
        description=_l("Only for a procedure that is not in the list."),
    )
    station = SelectField(_l("Station"), choices=[], validate_choice=False)
    date = DateField(
        _l("Date"), validators=[InputRequired(_l("Please choose the day of the exam."))]
    )
    time = TimeField(
        _l("Time"), validators=[InputRequired(_l("Please choose the time of the exam."))]
    )
    referring_physician = StringField(
        _l("Referring physician"),
        validators=[Optional(), Length(max=64)],
        description=_l("Family name, given name"),
    )
    priority = SelectField(
        _l("Priority"), choices=options(PRIORITY_CHOICES), validators=[Optional()]
    )
    notes = TextAreaField(
        _l("Notes for the radiographer"),
        validators=[Optional(), Length(max=_NOTES_MAX, message=_l("The notes are too long."))],
    )
    duration_minutes = IntegerField(
        _l("Duration (minutes)"),
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAX_DURATION_MINUTES,
                message=_l("Between 1 and %(num)d minutes.", num=MAX_DURATION_MINUTES),
            ),
        ],
        description=_l("Leave empty for the procedure's usual duration."),
    )
    confirm_new_patient = BooleanField(_l("This is a new patient, not one of those listed"))
    allow_overlap = BooleanField(_l("Book anyway, at the same time as the bookings listed"))
    update_patient = BooleanField(
        _l("Same person: change the stored details to the ones typed here")
    )


class RescheduleForm(FlaskForm):  # type: ignore[misc]
    """Move an exam, or change who referred it and the notes."""

    station = SelectField(_l("Station"), choices=[], validate_choice=False)
    date = DateField(_l("Date"), validators=[InputRequired(_l("Please choose the new day."))])
    time = TimeField(_l("Time"), validators=[InputRequired(_l("Please choose the new time."))])
    duration_minutes = IntegerField(
        _l("Duration (minutes)"),
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAX_DURATION_MINUTES,
                message=_l("Between 1 and %(num)d minutes.", num=MAX_DURATION_MINUTES),
            ),
        ],
    )
    referring_physician = StringField(
        _l("Referring physician"), validators=[Optional(), Length(max=64)]
    )
    priority = SelectField(
        _l("Priority"), choices=options(PRIORITY_CHOICES), validators=[Optional()]
    )
    notes = TextAreaField(
        _l("Notes for the radiographer"), validators=[Optional(), Length(max=_NOTES_MAX)]
    )
    allow_overlap = BooleanField(_l("Move it anyway, at the same time as the bookings listed"))


class CancelForm(FlaskForm):  # type: ignore[misc]
    """Cancel an exam, saying why."""

    reason = TextAreaField(
        _l("Reason for cancelling"),
        validators=[
            DataRequired(_l("Please say why the exam is cancelled.")),
            Length(max=1024, message=_l("Please keep the reason shorter (1024 letters).")),
        ],
    )


class UserForm(FlaskForm):  # type: ignore[misc]
    """Create a user."""

    name = StringField(_l("User name"), validators=[DataRequired(_l("Please enter a user name."))])
    role = SelectField(_l("Role"), choices=options(ROLE_CHOICES), validate_choice=False)
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Please enter a password (8 characters at least)."))],
    )


class UserEditForm(FlaskForm):  # type: ignore[misc]
    """Change a user's role, whether they may sign in, or their password."""

    role = SelectField(_l("Role"), choices=options(ROLE_CHOICES), validate_choice=False)
    active = BooleanField(_l("May sign in"))
    password = PasswordField(_l("New password"), validators=[Optional()])


class StationForm(FlaskForm):  # type: ignore[misc]
    """A modality's station."""

    ae_title = StringField(
        _l("AE title"), validators=[DataRequired(_l("Please enter the AE title."))]
    )
    modality = StringField(_l("Modality"), validators=[Optional()])
    name = StringField(_l("Name"), validators=[Optional()])
    location = StringField(_l("Location"), validators=[Optional()])
    character_set = SelectField(
        _l("Character set"), choices=options(CHARSET_CHOICES), validate_choice=False
    )


class CatalogForm(FlaskForm):  # type: ignore[misc]
    """A procedure of the catalog."""

    code = StringField(_l("Code"), validators=[DataRequired(_l("Please enter a short code."))])
    description = StringField(
        _l("Description"), validators=[DataRequired(_l("Please describe the procedure."))]
    )
    modality = StringField(
        _l("Modality"), validators=[DataRequired(_l("Please enter the modality."))]
    )
    default_station = SelectField(_l("Default station"), choices=[], validate_choice=False)
    duration_minutes = IntegerField(
        _l("Duration (minutes)"),
        default=15,
        validators=[
            InputRequired(_l("Please enter how long it takes.")),
            NumberRange(min=1, max=1440, message=_l("Between 1 and 1440 minutes.")),
        ],
    )
    active = BooleanField(_l("Offered for booking"), default=True)
    code_scheme = StringField(
        "Coding scheme (empty: 99CLINIC, the clinic's own)",
        validators=[Length(max=16, message="At most 16 characters.")],
    )
    code_meaning = StringField(
        "Meaning (empty: the procedure's name)",
        validators=[Length(max=64, message="At most 64 characters.")],
    )
    protocol_code_value = StringField(
        "Protocol value (what the console picks its protocol by)",
        validators=[Length(max=16, message="At most 16 characters.")],
    )
    protocol_code_scheme = StringField(
        "Protocol coding scheme (empty: 99CLINIC)",
        validators=[Length(max=16, message="At most 16 characters.")],
    )
    protocol_code_meaning = StringField(
        "Protocol meaning (empty: the procedure's name)",
        validators=[Length(max=64, message="At most 64 characters.")],
    )
    preparation = TextAreaField(
        _l("Preparation for the patient"),
        validators=[
            Optional(),
            Length(max=600, message=_l("Please keep it shorter (600 letters).")),
        ],
        description=_l("Printed on the appointment slip, e.g. come fasting, bring earlier images."),
    )


class ContactForm(FlaskForm):  # type: ignore[misc]
    """A patient's phone and e-mail."""

    phone = StringField(
        _l("Phone"),
        validators=[Optional(), Length(max=32, message=_l("The phone number is too long."))],
        render_kw={"autocomplete": "off", "inputmode": "tel"},
    )
    email = StringField(
        _l("E-mail"),
        validators=[Optional(), Length(max=254, message=_l("The e-mail address is too long."))],
        render_kw={"autocomplete": "off", "inputmode": "email"},
    )


class OpeningHoursForm(FlaskForm):  # type: ignore[misc]
    """A station's opening hours per weekday and its closed dates."""

    own_hours = BooleanField(_l("This station has its own opening hours (below)"))
    closed_dates = TextAreaField(
        _l("Closed dates"),
        validators=[Optional()],
        description=_l("One date a line, YYYY-MM-DD (holidays, maintenance)."),
    )


for _day in WEEKDAYS:
    setattr(
        OpeningHoursForm,
        _day,
        StringField(
            WEEKDAY_NAMES[_day],
            validators=[Optional(), Length(max=64)],
            description=_l("HH:MM-HH:MM, several with commas; empty: closed"),
        ),
    )


class MergeForm(FlaskForm):  # type: ignore[misc]
    """Merge one patient record into another (administrators)."""

    keep_patient_id = StringField(
        _l("Patient ID to keep"),
        validators=[DataRequired(_l("Please enter the patient ID that stays.")), Length(max=64)],
    )
    merge_patient_id = StringField(
        _l("Patient ID to merge into it"),
        validators=[DataRequired(_l("Please enter the patient ID to merge.")), Length(max=64)],
        description=_l("Its bookings, performed steps and print jobs move; the record goes."),
    )
    confirm = BooleanField(_l("These two records are the same person: merge them"))


class EmptyForm(FlaskForm):  # type: ignore[misc]
    """A button-only form (sign out, revoke): just the CSRF token."""
