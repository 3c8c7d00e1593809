"""A record page's quick actions (its form's ``view.actions``): upload files into an
attachment field, and send a templated message through a manual rule. Creating a related
record is the new-record page with the record pre-linked (``pages_record``).

Each is one transaction through the same services as the API: the upload checks the
field's types and size, the record's row scope and the field's write right and keeps the
files already there; a message runs the rule engine's manual rule (its channel, retries
and dead letters) and is audited. A refusal shows on the record page, above its head.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from engine_forms import service
from engine_forms.attachments import store_upload
from engine_forms.forms import published
from engine_rules import manual
from frontend.i18n import N_, _
from frontend.web import FLASH, redirect, render
from frontend.workspace.pages_record import FORM, caller_of, record_page
from frontend.workspace.values import Shown, ids_of, record_url
from platform_core.app import ContextDep, IdPath
from platform_core.channels.store import effective_settings
from platform_core.errors import DomainError, InvalidInput
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, client_of, rule

router = APIRouter(include_in_schema=False)
RECORD = FORM + "/records/{record_id}"
MAX_FILES = 20

CHANNELS = {"sms": N_("短信"), "wecom": N_("企业微信"), "email": N_("邮件"),
            "in_app": N_("站内消息"), "webhook": N_("Webhook")}


def channel_names(keys: Any) -> str:
    return "、".join(_(CHANNELS[k]) if k in CHANNELS else k for k in keys)


FLASH.setdefault("files_uploaded", N_("文件已上传"))
FLASH.setdefault("message_sent", N_("消息已发送（外部渠道的消息会在后台发出）"))


@router.post(RECORD + "/upload/{field}", response_class=HTMLResponse,
             openapi_extra=rule("form:update"))
async def upload_files(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                       request: Request, app: str, form: str, record_id: IdPath,
                       field: str) -> Response:
    """Add the posted files to the record's attachment field ``field``."""
    posted = await request.form()
    files = [f for f in posted.getlist("file") if hasattr(f, "filename") and f.filename]
    caller = caller_of(request, ctx, principal, access)
    try:
        if not files:
            raise InvalidInput(_("请选择要上传的文件。"), field=field)
        if len(files) > MAX_FILES:
            raise InvalidInput(_("一次最多上传 {n} 个文件。").format(n=MAX_FILES), field=field)
        with ctx.db.write() as s:
            pub = published(s, app, form)
            spec = pub.spec.field(field)
            if spec is None or spec.type != "attachment" or not access.readable(field):
                raise InvalidInput(_("这个表单没有这个附件字段。"), field=field)
            service.check_payload(pub, access, {field: None})
            doc = service.read_one(s, caller, pub, record_id)
            added = [store_upload(s, pub, field_key=field, filename=f.filename or "file",
                                  content_type=f.content_type, stream=f.file,
                                  root=ctx.settings.data_dir,
                                  actor=principal.actor).id for f in files]
            service.update(s, caller, pub, record_id,
                           {field: ids_of(doc["data"].get(field)) + added},
                           expected_version=doc["row_version"])
    except DomainError as exc:
        return record_page(request, ctx, principal, access, app, form, record_id,
                           error=exc.detail, status=exc.status)
    return redirect(record_url(app, form, record_id), "files_uploaded")


def _choices(ctx: Any, s: Any, app: str, form: str, keys: tuple[str, ...] | None
             ) -> list[manual.Manual]:
    settings = effective_settings(ctx.db, ctx.settings, ctx.keyring)
    return manual.offered(s, app, form, settings, keys)


@router.get(RECORD + "/message", response_class=HTMLResponse,
            openapi_extra=rule("form:read"))
def message_page(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                 request: Request, app: str, form: str, record_id: IdPath,
                 pick: str = "") -> HTMLResponse:
    """The messages this record can be sent (the form's manual rules), the chosen one
    rendered for this record with its recipients as the viewer may see them."""
    return _message_page(ctx, principal, access, request, app, form, record_id, pick)


def _message_page(ctx: Any, principal: Any, access: Any, request: Request, app: str,
                  form: str, record_id: int, pick: str, *, error: str = "",
                  status: int = 200) -> HTMLResponse:
    caller = caller_of(request, ctx, principal, access)
    keys = tuple(request.query_params.getlist("rule")) or None
    with ctx.db.read() as s:
        pub = published(s, app, form)
        doc = service.read_one(s, caller, pub, record_id)
        shown = Shown(s, service.narrowed(s, caller, pub), pub)
        title = str(shown.text(pub.spec.field(pub.spec.title_field),
                               doc["data"].get(pub.spec.title_field))
                    ) if pub.spec.title_field else f"#{record_id}"
        choices = _choices(ctx, s, app, form, keys)
        chosen = next((c for c in choices if c.key == pick), choices[0] if choices else None)
        preview: list[dict[str, Any]] = []
        if chosen is not None and not error:
            try:
                preview = [_masked(p) for p in manual.preview(
                    s, app=app, form=form, key=chosen.key, record_id=record_id,
                    actor=principal.actor, now=utcnow(), keyring=ctx.keyring)]
            except DomainError as exc:
                error = exc.detail
    return render(request, "workspace/message.html", status=status, app=app, form=form,
                  pub=pub, doc=doc, title=title, choices=choices, chosen=chosen,
                  preview=preview, error=error, nonce=secrets.token_urlsafe(16),
                  channel_names=channel_names,
                  keys=keys or ())


def _masked(preview: dict[str, Any]) -> dict[str, Any]:
    """A message's recipients masked on the page (the message goes to the real ones)."""
    to = preview.get("to")
    return preview | {"to": [_mask(str(t)) for t in to]} if isinstance(to, list) else preview


def _mask(address: str) -> str:
    if "@" in address:
        name, _at, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    return address[:3] + "****" + address[-4:] if len(address) >= 8 else "****"


@router.post(RECORD + "/message", response_class=HTMLResponse,
             openapi_extra=rule("form:read"))
async def send_message(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                       request: Request, app: str, form: str,
                       record_id: IdPath) -> Response:
    posted = await request.form()
    key = str(posted.get("rule") or "")
    nonce = str(posted.get("nonce") or "")
    caller = caller_of(request, ctx, principal, access)
    try:
        with ctx.db.write() as s:
            pub = published(s, app, form)
            service.read_one(s, caller, pub, record_id)  # scope: they may read it
            chosen = next((c for c in _choices(ctx, s, app, form, None) if c.key == key),
                          None)
            if chosen is not None and not chosen.ready:
                raise InvalidInput(_("「{name}」的发送渠道（{channels}）还没有配置，请管理员在"
                                     "「集成 → 通知渠道」中设置。").format(
                    name=chosen.name, channels=channel_names(chosen.missing)), rule=key)
            manual.send(s, app=app, form=form, key=key, record_id=record_id,
                        actor=principal.actor, nonce=nonce, now=utcnow(),
                        keyring=ctx.keyring, client=client_of(request))
    except DomainError as exc:
        return _message_page(ctx, principal, access, request, app, form, record_id, key,
                             error=exc.detail, status=exc.status)
    return redirect(record_url(app, form, record_id), "message_sent")
