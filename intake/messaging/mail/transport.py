"""Sends a built email: SMTP when configured, else an .eml file in the data folder. Classifies failures."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import time
from email import policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from intake.settings import Settings


class _Unfolded(policy.Compat32):
    """compat32 that writes a plain ASCII header as it is (what compat32 would write, without running the
    Header machinery for each), so long values (the one-click unsubscribe link) stay on one line, as
    `EmailMessage` keeps them. Anything else (encoded words, line breaks) goes the compat32 way."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value:
            line = f"{name}: {value}{self.linesep}"
            if len(line) <= 1000:
                return line.encode("ascii")
        return super().fold_binary(name, value)


_UNFOLDED = _Unfolded(max_line_length=998)
_WIRE = _UNFOLDED.clone(linesep="\r\n")
CHECK_IDLE_AFTER = 5.0
"""A kept connection idle longer than this is checked (NOOP) before use; a busy one is not (no RSET per email)."""


class TemporaryFailure(Exception):
    """Try again later: SMTP 4xx, a dropped connection, a timeout."""


class PermanentFailure(Exception):
    """Do not try again: SMTP 5xx (the address or the message is refused)."""


def _classify(code: int, what: str) -> Exception:
    label = f"smtp {code} on {what}"
    return TemporaryFailure(label) if 400 <= code < 500 else PermanentFailure(label)


class SmtpTransport:
    """One connection kept open per worker process and re-opened when the server drops it."""

    def __init__(self, settings: Settings):
        self._smtp_settings = settings.smtp
        self._envelope_from = parseaddr(settings.smtp.from_address)[1]
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0

    def _connect(self) -> smtplib.SMTP:
        cfg = self._smtp_settings
        connection = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        connection.ehlo()
        if cfg.starttls and connection.has_extn("starttls"):
            connection.starttls(context=ssl.create_default_context())
            connection.ehlo()
        if cfg.username:
            connection.login(cfg.username, cfg.password)
        return connection

    def _ready(self) -> smtplib.SMTP:
        """The kept connection, checked with a NOOP only when it has been idle a while (servers drop idle
        clients); else a new one. One that fails while busy raises, and the caller retries later."""
        if self._connection is not None and time.monotonic() - self._last_used > CHECK_IDLE_AFTER:
            try:
                code, _ = self._connection.noop()
            except (smtplib.SMTPException, OSError):
                code = -1
            if code != 250:
                self.close()
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None

    def send(self, message: Message) -> None:
        try:
            connection = self._ready()
            if isinstance(message, EmailMessage):
                # Its own policy folds and encodes the headers, with SMTPUTF8 for an address that needs it.
                connection.send_message(message)
            else:
                recipients = [address for _, address in getaddresses(message.get_all("To", []))]
                options = ["BODY=8BITMIME"] if connection.has_extn("8bitmime") else []
                connection.sendmail(self._envelope_from, recipients, message.as_bytes(policy=_WIRE), options)
            # Some recipients refused, others accepted: it went out.
            self._last_used = time.monotonic()
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _ in exc.recipients.values()]
            raise _classify(min(codes) if any(c < 500 for c in codes) else max(codes), "recipient") from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _classify(exc.smtp_code, type(exc).__name__) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TemporaryFailure(f"connection: {type(exc).__name__}") from None


class FileTransport:
    """The embedded default: each email becomes `<data>/emails/<delivery>.eml`, as a mail client opens it."""

    def __init__(self, settings: Settings):
        self._folder = settings.app.data_dir / "emails"

    def send(self, message: Message) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = str(message["X-Intake-Delivery"] or message["Message-ID"]).strip("<>").replace("/", "_")
        target = self._folder / f"{name}.eml"
        partial = target.with_suffix(".eml.part")
        partial.write_bytes(bytes(message) if isinstance(message, EmailMessage) else message.as_bytes(policy=_UNFOLDED))
        partial.replace(target)  # a reader never sees half a file

    def close(self) -> None:
        return None


Transport = SmtpTransport | FileTransport


def create_transport(settings: Settings) -> Transport:
    return SmtpTransport(settings) if settings.smtp.host else FileTransport(settings)


__all__ = ["FileTransport", "PermanentFailure", "SmtpTransport", "TemporaryFailure", "Transport"]
