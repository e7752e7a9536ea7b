"""Checks and normalises a person's contact details: email and phone become the keys that find them again."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from intake.leads.schemas import ContactIn
from intake.problems import FieldProblem
from intake.text import clean_name, name_problem

_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


@dataclass(frozen=True, slots=True)
class Contact:
    first_name: str
    last_name: str
    email: str
    phone: str | None
    preferred_contact: str
    location: str
    zip: str | None


def normalise_email(raw: str) -> str:
    """Lower-cased normalised address; raises EmailNotValidError."""
    return validate_email(raw.strip(), check_deliverability=False).normalized.lower()


def normalise_phone(raw: str, region: str = "US") -> str:
    """E.164 form (+15615550100); raises ValueError when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_contact(contact: ContactIn) -> tuple[Contact | None, list[FieldProblem]]:
    errors: list[FieldProblem] = []
    first, last = clean_name(contact.first_name), clean_name(contact.last_name)
    for field, value, label in (("first_name", first, "First name"), ("last_name", last, "Last name")):
        if not value:
            errors.append(FieldProblem(f"contact.{field}", f"{label} is required."))
        elif problem := name_problem(value):
            errors.append(FieldProblem(f"contact.{field}", problem))
    email = ""
    try:
        email = normalise_email(contact.email)
    except EmailNotValidError as exc:
        errors.append(FieldProblem("contact.email", f"Not a valid email address: {exc}"))
    phone = None
    if contact.phone is not None and contact.phone.strip():
        try:
            phone = normalise_phone(contact.phone)
        except ValueError:
            errors.append(FieldProblem("contact.phone", "Not a valid phone number (US numbers need 10 digits)."))
    if contact.preferred_contact in {"phone", "text"} and not (contact.phone and contact.phone.strip()):
        errors.append(
            FieldProblem("contact.phone", f"A phone number is needed to be contacted by {contact.preferred_contact}.")
        )
    zip_code = contact.zip.strip() if contact.zip else None
    if zip_code and not _ZIP.match(zip_code):
        errors.append(FieldProblem("contact.zip", "A US ZIP code has 5 digits (or 5+4)."))
    if errors:
        return None, errors
    return Contact(first, last, email, phone, contact.preferred_contact, contact.location, zip_code or None), []


def search_text(first_name: str, last_name: str, email: str, phone: str | None) -> str:
    """What the staff search box matches: names, email and phone digits, lower-cased.

    The phone's digits come last, so a text made without a phone plus a phone's digits is the
    text made with that phone: the submission store relies on it to keep a phone on file.
    """
    return f"{first_name} {last_name} {email} {(phone or '').lstrip('+')}".lower()[:500]
