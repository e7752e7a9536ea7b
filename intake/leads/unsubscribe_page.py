"""The unsubscribe link: a GET page that asks to confirm with one button, and the POST that unsubscribes.

Mail security scanners fetch the links in an email on their own, so the GET changes nothing: it shows a
page, in the person's language, whose one button POSTs to the same address. A mail client's RFC 8058
one-click unsubscribe POSTs there too. Both are public and idempotent.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath

from intake.leads.unsubscribe import UnsubscribeService
from intake.messaging.mail.builder import display_phone
from intake.problems import NotFound
from intake.settings import Settings

_DONE = {
    "en": (
        "You are unsubscribed",
        "You will get no more reminders or news from {clinic}. Emails about a booking "
        "you make still reach you. Changed your mind? Call us at {phone}.",
    ),
    "es": (
        "Se ha dado de baja",
        "No recibirá más recordatorios ni noticias de {clinic}. Los correos sobre una cita "
        "que reserve le seguirán llegando. ¿Cambió de opinión? Llámenos al {phone}.",
    ),
}
_CONFIRM = {
    "en": (
        "Unsubscribe from {clinic}'s emails?",
        "Press the button to get no more reminders or news from {clinic}. Emails about a booking "
        "you make will still reach you.",
        "Unsubscribe",
    ),
    "es": (
        "¿Darse de baja de los correos de {clinic}?",
        "Pulse el botón para no recibir más recordatorios ni noticias de {clinic}. Los correos sobre "
        "una cita que reserve le seguirán llegando.",
        "Darme de baja",
    ),
}
_GONE = (
    "This link does not work",
    "The unsubscribe link is not valid. Please call us and we will take you off our list.",
)
_BUTTON_STYLE = (
    "font-size:17px;padding:12px 22px;border:0;border-radius:6px;background:#1d4e89;color:#ffffff;cursor:pointer"
)


def _page(title: str, body: str, lang: str, status: int = 200) -> Response[str]:
    html = (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:40px auto;padding:0 16px;'
        'color:#1d2733;line-height:1.5">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    # The address carries the person's token: no Referer may take it anywhere, and no cache may keep it.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response(html, media_type=MediaType.HTML, status_code=status, headers=headers)


def _gone() -> Response[str]:
    return _page(_GONE[0], f"<p>{escape(_GONE[1])}</p>", "en", status=404)


def _done(lang: str, settings: Settings) -> Response[str]:
    title, body = _DONE.get(lang, _DONE["en"])
    clinic = settings.clinic
    phone = f'<a href="tel:{escape(clinic.phone)}">{escape(display_phone(clinic.phone))}</a>'
    text = escape(body).format(clinic=escape(clinic.name), phone=phone)
    return _page(title, f"<p>{text}<br><br>{escape(clinic.address)}</p>", lang)


def _confirm(token: str, lang: str, settings: Settings) -> Response[str]:
    title, body, button = _CONFIRM.get(lang, _CONFIRM["en"])
    clinic = escape(settings.clinic.name)
    form = (
        f'<form method="post" action="/u/{escape(token)}">'
        f'<button type="submit" style="{_BUTTON_STYLE}">{escape(button)}</button></form>'
    )
    return _page(
        title.format(clinic=settings.clinic.name),
        f"<p>{escape(body).format(clinic=clinic)}</p>{form}<p>{escape(settings.clinic.address)}</p>",
        lang,
    )


class UnsubscribeController(Controller):
    path = "/u"
    tags = ["unsubscribe"]
    opt = {"public": True}

    @get(
        "/{token:str}",
        operation_id="unsubscribePage",
        summary="A page that asks to confirm the unsubscribe with one button (HTML; changes nothing)",
    )
    async def page(
        self,
        token: FromPath[str],
        unsubscribe_service: NamedDependency[UnsubscribeService],
        settings: NamedDependency[Settings],
    ) -> Response[str]:
        try:
            lang, unsubscribed = await unsubscribe_service.state(token)
        except NotFound:
            return _gone()
        return _done(lang, settings) if unsubscribed else _confirm(token, lang, settings)

    @post(
        "/{token:str}",
        operation_id="unsubscribeOneClick",
        summary="Unsubscribe: the page's button, or RFC 8058 one-click from a mail client",
        status_code=200,
    )
    async def one_click(
        self,
        token: FromPath[str],
        request: Request[Any, Any, Any],
        unsubscribe_service: NamedDependency[UnsubscribeService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        # A browser (the page's button) gets a page back; a mail client's one-click, a short JSON answer.
        wants_page = "text/html" in request.headers.get("accept", "")
        try:
            lang = await unsubscribe_service.unsubscribe(token)
        except NotFound:
            if wants_page:
                return _gone()
            raise
        if wants_page:
            return _done(lang, settings)
        return Response({"status": "unsubscribed"}, media_type=MediaType.JSON, headers={"Cache-Control": "no-store"})
