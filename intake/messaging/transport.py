"""Sends a built email: SMTP when configured, else an .eml file in the data folder. Classifies failures."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.message import EmailMessage

from intake.settings import Settings


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
        self._connection: smtplib.SMTP | None = None

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

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._connection = None

    def send(self, message: EmailMessage) -> None:
        try:
            if self._connection is None:
                self._connection = self._connect()
            else:
                try:
                    self._connection.rset()
                except (smtplib.SMTPException, OSError):
                    self.close()
                    self._connection = self._connect()
            refused = self._connection.send_message(message)
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
        if refused:
            # Some recipients refused, others accepted: it went out; the refusals are logged by the caller.
            return


class FileTransport:
    """The embedded default: each email becomes `<data>/emails/<delivery>.eml`, as a mail client opens it."""

    def __init__(self, settings: Settings):
        self._folder = settings.app.data_dir / "emails"

    def send(self, message: EmailMessage) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = str(message["X-Intake-Delivery"] or message["Message-ID"]).strip("<>").replace("/", "_")
        target = self._folder / f"{name}.eml"
        partial = target.with_suffix(".eml.part")
        partial.write_bytes(bytes(message))
        partial.replace(target)  # a reader never sees half a file

    def close(self) -> None:
        return None


Transport = SmtpTransport | FileTransport


def create_transport(settings: Settings) -> Transport:
    return SmtpTransport(settings) if settings.smtp.host else FileTransport(settings)


__all__ = ["FileTransport", "PermanentFailure", "SmtpTransport", "TemporaryFailure", "Transport"]
