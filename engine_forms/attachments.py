"""Attachment files: streamed to ``<data dir>/attachments`` with size and type limits.

The bytes never enter the database; a row records name, type, size and SHA-256. A file
is served only through the API, which checks it belongs to the form asked for.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from engine_forms.forms import Published
from engine_forms.models import Attachment
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.store import Actor

CHUNK = 1 << 16
DEFAULT_MAX_MB = 20


class TooLarge(DomainError):
    status, code, title = 413, "too_large", "Payload too large"


def _accepts(accept: list[str], filename: str, content_type: str) -> bool:
    suffix = Path(filename).suffix.lower()
    for rule in accept:
        rule = rule.lower()
        if rule.startswith(".") and suffix == rule:
            return True
        if rule.endswith("/*") and content_type.startswith(rule[:-1]):
            return True
        if rule == content_type:
            return True
    return not accept


def store_upload(session: Session, pub: Published, *, field_key: str, filename: str,
                 content_type: str | None, stream: BinaryIO, root: Path,
                 actor: Actor) -> Attachment:
    """Save one upload for ``field_key`` of the form; refuse oversize or unlisted types."""
    field = pub.spec.field(field_key)
    if field is None or field.type != "attachment":
        raise InvalidInput(f"field: {field_key!r} is not an attachment field of "
                           f"{pub.spec.key}", field="field")
    name = Path(filename or "file").name[:255] or "file"
    ctype = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    accept = field.config.get("accept", [])
    if not _accepts(accept, name, ctype):
        raise InvalidInput(f"{field_key}: file type {ctype} ({Path(name).suffix}) is not "
                           f"accepted (accepted: {', '.join(accept)})", field=field_key)
    limit = int(float(field.config.get("max_size_mb", DEFAULT_MAX_MB)) * 1024 * 1024)
    relative = Path(uuid.uuid4().hex[:2]) / uuid.uuid4().hex
    target = root / "attachments" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{field_key}: the file is larger than the field's limit "
                                   f"of {limit // (1024 * 1024)} MB", field=field_key,
                                   limit_bytes=limit)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    row = Attachment(app=pub.app, form=pub.spec.key, field=field_key, filename=name,
                     content_type=ctype, size=size, sha256=digest.hexdigest(),
                     path=str(relative), created_by=actor.user_id)
    session.add(row)
    session.flush()
    return row


def get_attachment(session: Session, pub: Published, attachment_id: int) -> Attachment:
    row = session.get(Attachment, attachment_id)
    if row is None or (row.app, row.form) != (pub.app, pub.spec.key):
        raise NotFound(f"attachment {attachment_id} does not exist")
    return row


def describe(row: Attachment) -> dict[str, object]:
    return {"id": row.id, "field": row.field, "filename": row.filename,
            "content_type": row.content_type, "size": row.size, "sha256": row.sha256,
            "record_id": row.record_id, "created_at": row.created_at.isoformat()}
