"""The front desk's forms (Flask-WTF: every one carries a CSRF token).

Messages are written the way a receptionist would say them.
"""

from __future__ import annotations

from typing import Any

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


_SEX_LABELS = {"F": "Female", "M": "Male", "O": "Other"}
_PRIORITY_LABELS = {
    "STAT": "Immediately (STAT)",
    "HIGH": "High",
    "ROUTINE": "Routine",
    "MEDIUM": "Medium",
    "LOW": "Low",
}
_ID_MAX = BY_NAME["patient_id"].max_length
_DESCRIPTION_MAX = BY_NAME["procedure_description"].max_length
_NOTES_MAX = BY_NAME["notes"].max_length
# The values come from the booking field table; the forms only add the words people read.
SEX_CHOICES = [("", "Not known"), *((code, _SEX_LABELS[code]) for code in sorted(SEXES))]
PRIORITY_CHOICES = [("", "Normal"), *((code, _PRIORITY_LABELS[code]) for code in PRIORITIES)]
ROLE_CHOICES = [("frontdesk", "Front desk"), ("admin", "Administrator")]
CHARSET_CHOICES = [
    ("", "Service default"),
    ("ISO_IR 192", "Unicode (ISO_IR 192)"),
    ("ISO_IR 100", "Latin-1 (ISO_IR 100)"),
]


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Sign in."""

    name = StringField(
        "User name",
        validators=[DataRequired("Please enter your user name.")],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Please enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )


class BookingForm(FlaskForm):  # type: ignore[misc]
    """Book an exam: the patient, the procedure, when and where."""

    patient_id = StringField(
        "Patient ID",
        validators=[
            Optional(),
            Length(max=_ID_MAX, message=f"The patient ID is too long ({_ID_MAX} at most)."),
        ],
        description="Leave empty for a new patient: the clinic gives one.",
    )
    family_name = StringField(
        "Family name",
        validators=[
            DataRequired("Please enter the patient's family name."),
            Length(max=64, message="The family name is too long (64 letters at most)."),
        ],
    )
    given_name = StringField(
        "Given name",
        validators=[Optional(), Length(max=64, message="The given name is too long.")],
    )
    birth_date = DateField(
        "Date of birth",
        validators=[Optional()],
        render_kw={"max": "9999-12-31"},
    )
    sex = SelectField("Sex", choices=options(SEX_CHOICES), validators=[Optional()])
    procedure = SelectField("Procedure", choices=[], validate_choice=False)
    modality = StringField(
        "Modality",
        validators=[Optional(), Length(max=16)],
        description="Only for a procedure that is not in the list, e.g. CR, IO, PX, US.",
    )
    description = StringField(
        "Description",
        validators=[
            Optional(),
            Length(max=_DESCRIPTION_MAX, message="The description is too long."),
        ],
        description="Only for a procedure that is not in the list.",
    )
    station = SelectField("Station", choices=[], validate_choice=False)
    date = DateField("Date", validators=[InputRequired("Please choose the day of the exam.")])
    time = TimeField("Time", validators=[InputRequired("Please choose the time of the exam.")])
    referring_physician = StringField(
        "Referring physician",
        validators=[Optional(), Length(max=64)],
        description="Family name, given name",
    )
    priority = SelectField("Priority", choices=options(PRIORITY_CHOICES), validators=[Optional()])
    notes = TextAreaField(
        "Notes for the radiographer",
        validators=[Optional(), Length(max=_NOTES_MAX, message="The notes are too long.")],
    )
    duration_minutes = IntegerField(
        "Duration (minutes)",
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAX_DURATION_MINUTES,
                message=f"Between 1 and {MAX_DURATION_MINUTES} minutes.",
            ),
        ],
        description="Leave empty for the procedure's usual duration.",
    )
    confirm_new_patient = BooleanField("This is a new patient, not one of those listed")
    allow_overlap = BooleanField("Book anyway, at the same time as the bookings listed")
    update_patient = BooleanField("Same person: change the stored details to the ones typed here")


class RescheduleForm(FlaskForm):  # type: ignore[misc]
    """Move an exam, or change who referred it and the notes."""

    station = SelectField("Station", choices=[], validate_choice=False)
    date = DateField("Date", validators=[InputRequired("Please choose the new day.")])
    time = TimeField("Time", validators=[InputRequired("Please choose the new time.")])
    duration_minutes = IntegerField(
        "Duration (minutes)",
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAX_DURATION_MINUTES,
                message=f"Between 1 and {MAX_DURATION_MINUTES} minutes.",
            ),
        ],
    )
    referring_physician = StringField(
        "Referring physician", validators=[Optional(), Length(max=64)]
    )
    priority = SelectField("Priority", choices=options(PRIORITY_CHOICES), validators=[Optional()])
    notes = TextAreaField(
        "Notes for the radiographer", validators=[Optional(), Length(max=_NOTES_MAX)]
    )
    allow_overlap = BooleanField("Move it anyway, at the same time as the bookings listed")


class CancelForm(FlaskForm):  # type: ignore[misc]
    """Cancel an exam, saying why."""

    reason = TextAreaField(
        "Reason for cancelling",
        validators=[
            DataRequired("Please say why the exam is cancelled."),
            Length(max=1024, message="Please keep the reason shorter (1024 letters)."),
        ],
    )


class UserForm(FlaskForm):  # type: ignore[misc]
    """Create a user."""

    name = StringField("User name", validators=[DataRequired("Please enter a user name.")])
    role = SelectField("Role", choices=options(ROLE_CHOICES), validate_choice=False)
    password = PasswordField(
        "Password", validators=[DataRequired("Please enter a password (8 characters at least).")]
    )


class UserEditForm(FlaskForm):  # type: ignore[misc]
    """Change a user's role, whether they may sign in, or their password."""

    role = SelectField("Role", choices=options(ROLE_CHOICES), validate_choice=False)
    active = BooleanField("May sign in")
    password = PasswordField("New password", validators=[Optional()])


class StationForm(FlaskForm):  # type: ignore[misc]
    """A modality's station."""

    ae_title = StringField("AE title", validators=[DataRequired("Please enter the AE title.")])
    modality = StringField("Modality", validators=[Optional()])
    name = StringField("Name", validators=[Optional()])
    location = StringField("Location", validators=[Optional()])
    character_set = SelectField(
        "Character set", choices=options(CHARSET_CHOICES), validate_choice=False
    )


class CatalogForm(FlaskForm):  # type: ignore[misc]
    """A procedure of the catalog."""

    code = StringField("Code", validators=[DataRequired("Please enter a short code.")])
    description = StringField(
        "Description", validators=[DataRequired("Please describe the procedure.")]
    )
    modality = StringField("Modality", validators=[DataRequired("Please enter the modality.")])
    default_station = SelectField("Default station", choices=[], validate_choice=False)
    duration_minutes = IntegerField(
        "Duration (minutes)",
        default=15,
        validators=[
            InputRequired("Please enter how long it takes."),
            NumberRange(min=1, max=1440, message="Between 1 and 1440 minutes."),
        ],
    )
    active = BooleanField("Offered for booking", default=True)
    preparation = TextAreaField(
        "Preparation for the patient",
        validators=[Optional(), Length(max=600, message="Please keep it shorter (600 letters).")],
        description="Printed on the appointment slip, e.g. come fasting, bring earlier images.",
    )


class ContactForm(FlaskForm):  # type: ignore[misc]
    """A patient's phone and e-mail."""

    phone = StringField(
        "Phone",
        validators=[Optional(), Length(max=32, message="The phone number is too long.")],
        render_kw={"autocomplete": "off", "inputmode": "tel"},
    )
    email = StringField(
        "E-mail",
        validators=[Optional(), Length(max=254, message="The e-mail address is too long.")],
        render_kw={"autocomplete": "off", "inputmode": "email"},
    )


class OpeningHoursForm(FlaskForm):  # type: ignore[misc]
    """A station's opening hours per weekday and its closed dates."""

    own_hours = BooleanField("This station has its own opening hours (below)")
    closed_dates = TextAreaField(
        "Closed dates",
        validators=[Optional()],
        description="One date a line, YYYY-MM-DD (holidays, maintenance).",
    )


for _day in WEEKDAYS:
    setattr(
        OpeningHoursForm,
        _day,
        StringField(
            WEEKDAY_NAMES[_day],
            validators=[Optional(), Length(max=64)],
            description="HH:MM-HH:MM, several with commas; empty: closed",
        ),
    )


class MergeForm(FlaskForm):  # type: ignore[misc]
    """Merge one patient record into another (administrators)."""

    keep_patient_id = StringField(
        "Patient ID to keep",
        validators=[DataRequired("Please enter the patient ID that stays."), Length(max=64)],
    )
    merge_patient_id = StringField(
        "Patient ID to merge into it",
        validators=[DataRequired("Please enter the patient ID to merge."), Length(max=64)],
        description="Its bookings, performed steps and print jobs move; the record goes.",
    )
    confirm = BooleanField("These two records are the same person: merge them")


class EmptyForm(FlaskForm):  # type: ignore[misc]
    """A button-only form (sign out, revoke): just the CSRF token."""
