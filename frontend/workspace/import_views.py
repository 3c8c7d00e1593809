"""What the import page shows, built from the import services (``pages_import`` has the
routes): where an upload lives and how a URL names it, the map step's rows (samples,
suggestion or saved/earlier mapping, select values, relation look-up fields), the
mapping posted back, a batch's preview as its viewer may read it, and the services'
refusals in the page's words.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from engine_forms.forms import Published, published
from engine_forms.importing import NOT_IMPORTED
from engine_forms.imports import mapping as mapping_
from engine_forms.imports import reading
from engine_forms.imports.coerce import cell_text
from engine_forms.service import masked_keys
from frontend.i18n import _, current_locale
from frontend.workspace.pages_record import editable_keys
from frontend.workspace.values import Shown
from platform_core.errors import DomainError, NotFound

MAX_MB = 100  # the service's own default limit
SAMPLES = 3
WEAK = 0.75  # a suggestion scored below this is marked for the clerk to confirm
VALUE_ROWS = 20_000  # rows read to count a select column's values


class _Service:
    """``engine_forms.imports.service``, imported when first used (it lands in parallel)."""

    def __getattr__(self, name: str) -> Any:
        from engine_forms.imports import service as real

        return getattr(real, name)


service = _Service()


def uploads(ctx: Any) -> Path:
    return (Path(ctx.settings.data_dir) / "imports").resolve()


def token(ctx: Any, path: Path) -> str:
    return Path(path).resolve().relative_to(uploads(ctx)).as_posix()


def upload_path(ctx: Any, token: str) -> Path:
    """The saved upload a URL names; nothing outside the uploads folder."""
    base = uploads(ctx)
    path = (base / token).resolve() if token else base
    if not token or not path.is_relative_to(base) or not path.is_file():
        raise NotFound(_("这个上传的文件已不存在，请重新上传"))
    return path


def importable(pub: Published, caller: Any) -> list[Any]:
    keys = editable_keys(pub, caller)
    return [f for f in pub.spec.fields if f.key in keys and f.type not in NOT_IMPORTED]


def targets(s: Any, pub: Published, fields: list[Any]) -> dict[str, list[Any]]:
    """Per relation field, the unique fields of its target form (to find the record by)."""
    out: dict[str, list[Any]] = {}
    for f in fields:
        target = f.config.get("target")
        if f.type == "relation" and target:
            try:
                other = published(s, pub.app, target)
            except DomainError:
                continue
            out[f.key] = [g for g in other.spec.fields if g.unique]
    return out


def posted_mapping(posted: Any, header: list[str], sheet: str, header_row: int) -> Any:
    columns = []
    for i, title in enumerate(header):
        key = posted.get(f"col-{i}") or None
        values: dict[str, Any] = {}
        for name in posted:
            if name.startswith(f"v-{i}-"):
                values[posted[name]] = posted.get("m-" + name[2:]) or None
        columns.append(mapping_.ColumnMap(column=i, header=title, field=key, score=1.0,
                                          values=values, by=posted.get(f"by-{i}") or None))
    return mapping_.Mapping(sheet=sheet, header_row=header_row, columns=columns)


def batch_mapping(s: Any, caller: Any, pub: Published, batch_id: int) -> Any:
    batch = service.load(s, caller, pub, batch_id)
    return (mapping_.Mapping.model_validate(batch.mapping),
            dict(batch.options or {}) | {"batch": batch.name})


def map_context(s: Any, caller: Any, pub: Published, table: Any, query: Any,
                 posted: Any | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if posted is not None:
        chosen = posted_mapping(posted, table.header, table.sheet, table.header_row)
        options = {k: posted.get(k) for k in ("mode", "key", "atomic", "batch")}
    elif number(query.get("from")):
        chosen, options = batch_mapping(s, caller, pub, number(query.get("from")))
    elif query.get("mapping"):
        chosen = mapping_.get_mapping(s, pub, query["mapping"])
    else:
        chosen = mapping_.suggest(pub, table.header, session=s)
    by_column = {c.column: c for c in chosen.columns}
    sample = table.sample(20)
    fields = importable(pub, caller)
    rows = []
    for i, title in enumerate(table.header):
        seen = [cell_text(cells[i]) for _n, cells in sample if i < len(cells)]
        col = by_column.get(i) or mapping_.ColumnMap(column=i, header=title)
        rows.append({"i": i, "letter": reading.column_letter(i), "header": title,
                     "samples": [v for v in seen if v][:SAMPLES], "col": col,
                     "weak": bool(col.field) and 0 < col.score < WEAK})
    limited = islice(table.rows(), VALUE_ROWS)
    values = mapping_.select_values(pub, chosen, limited)
    return {"table": table, "rows": rows, "fields": fields, "values": values,
            "targets": targets(s, pub, fields), "options": options,
            "unique": [f for f in pub.spec.fields if f.unique],
            "saved": mapping_.list_mappings(s, pub), "sample": sample[:5],
            "field_of": {f.key: f for f in pub.spec.fields}}


def refused(st: dict[str, Any]) -> bool:
    """An all-or-nothing import that wrote nothing because some rows had problems."""
    return (not st["dry_run"] and st["status"] == "failed" and bool(st.get("problems"))
            and not (st.get("created") or st.get("updated")))


def remap(ctx: Any, batch: Any) -> dict[str, Any] | None:
    """The map step's query for the batch's file and mapping (while the upload is kept)."""
    try:
        name = token(ctx, Path(batch.path))
    except ValueError:
        return None
    if not Path(batch.path).is_file():
        return None
    options = batch.options or {}
    return {"file": name, "name": batch.filename, "sheet": options.get("sheet") or "",
            "header_row": options.get("header_row") or "", "from": batch.id}


def message(exc: DomainError) -> str:
    """A refusal in the page's language: the reader's own Chinese wording where it has
    one, the page's words for the service's refusals (which speak English, for the API)."""
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    if current_locale() != "zh-CN":
        return exc.detail
    if extra.get("zh"):
        return extra["zh"]
    if exc.status == 413:
        return _("文件超过 {n} MB").format(n=MAX_MB)
    # (field, the start of the service's English detail) → the page's words
    words = {("key", ""): _("“按唯一字段更新”和“跳过重复”要选一个唯一字段，并有一列对应到它"),
             ("mapping", "mapping: no column"): _("至少要有一列对应到字段"),
             ("mapping", ""): _("对应关系有问题"),
             ("mode", ""): _("你不能修改这个表单的记录，所以不能按唯一字段更新"),
             ("file", "file: expected"): _("只能导入 xlsx、xls、ods 或 csv 文件")}
    for (field, start), text in words.items():
        if extra.get("field") == field and exc.detail.startswith(start):
            return f"{text}（{exc.detail}）"
    if exc.status == 403:
        return _("你没有这样导入的权限（{detail}）").format(detail=exc.detail)
    if exc.status == 409:
        return _("这个批次现在不能这样操作（{detail}）").format(detail=exc.detail)
    return exc.detail


def number(text: Any, default: int | None = None) -> int | None:
    """A whole number from a URL or form (a malformed one is the default, never a 500)."""
    text = str(text or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else default


def preview(s: Any, caller: Any, pub: Published, stored: list[Any]) -> dict[str, Any]:
    """The batch's first stored rows as this viewer may read them: the filled fields they
    may see (computed ones left out), masked where their role masks, shown as on a list."""
    docs = [{"data": dict(p.get("data") or {})} for p in stored if isinstance(p, dict)]
    masked = masked_keys(pub, caller.access)
    cols = [f for f in pub.spec.fields if not f.field_type.computed
            and caller.access.readable(f.key)
            and any(d["data"].get(f.key) not in (None, "", []) for d in docs)]
    for d in docs:
        for f in cols:
            value = d["data"].get(f.key)
            if f.key in masked and value is not None:
                d["data"][f.key] = f.field_type.mask(value, f)
    shown = Shown.of(s, caller, pub, docs)
    rows = [(p.get("row"), [shown.text(f, d["data"].get(f.key)) for f in cols])
            for p, d in zip(stored, docs, strict=False)]
    return {"cols": cols, "rows": rows}
