"""The unsubscribe link: a GET page and the RFC 8058 one-click POST, both public and idempotent."""

from __future__ import annotations

from html import escape

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath

from intake.leads.unsubscribe import UnsubscribeService
from intake.messaging.mail.builder import display_phone
from intake.problems import NotFound
from intake.settings import Settings

_PAGE = {
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
_GONE = (
    "This link does not work",
    "The unsubscribe link is not valid. Please call us and we will take you off our list.",
)


def _page(title: str, body: str, lang: str, status: int = 200) -> Response[str]:
    html = (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:40px auto;padding:0 16px;'
        'color:#1d2733;line-height:1.5">'
        f"<h1>{escape(title)}</h1><p>{body}</p></body></html>"
    )
    return Response(html, media_type=MediaType.HTML, status_code=status, headers={"Cache-Control": "no-store"})


class UnsubscribeController(Controller):
    path = "/u"
    tags = ["unsubscribe"]
    opt = {"public": True}

    @get("/{token:str}", operation_id="unsubscribePage", summary="Unsubscribe at once and say so (HTML)")
    async def page(
        self,
        token: FromPath[str],
        unsubscribe_service: NamedDependency[UnsubscribeService],
        settings: NamedDependency[Settings],
    ) -> Response[str]:
        try:
            lang = await unsubscribe_service.unsubscribe(token)
        except NotFound:
            return _page(_GONE[0], escape(_GONE[1]), "en", status=404)
        title, body = _PAGE.get(lang, _PAGE["en"])
        clinic = settings.clinic
        phone = f'<a href="tel:{escape(clinic.phone)}">{escape(display_phone(clinic.phone))}</a>'
        return _page(
            title,
            escape(body).format(clinic=escape(clinic.name), phone=phone) + f"<br><br>{escape(clinic.address)}",
            lang,
        )

    @post("/{token:str}", operation_id="unsubscribeOneClick", summary="RFC 8058 one-click unsubscribe", status_code=200)
    async def one_click(
        self, token: FromPath[str], unsubscribe_service: NamedDependency[UnsubscribeService]
    ) -> dict[str, str]:
        await unsubscribe_service.unsubscribe(token)
        return {"status": "unsubscribed"}
