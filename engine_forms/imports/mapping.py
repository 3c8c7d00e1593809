"""Which column fills which field, and how a row becomes a payload.

``suggest`` matches each header to a field, best first: the key or label exactly (1.0) →
the label without spaces, punctuation and notes such as "（选填）" or "*" (0.95) → the
lower part of a two-row header ("联系方式/手机" → 手机) → a synonym (手机号/联系电话 →
the phone field; 0.9) → pinyin ("shouji", "sj" → 手机; 0.85/0.75) → string similarity
(difflib, ≥ 0.6, scaled to at most 0.8). Each field is given to one column only, the
best-scoring pair first.

``RowReader`` is built once per (form, mapping): one coercer closure per column. Its
``read`` turns a chunk of rows into payloads and problems; relation columns are resolved
by a unique field of the target form (``by``) with one query per chunk, inside the
caller's read scope of that form (a customer they may not see is "not found").
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms.fieldtypes.base import refuse
from engine_forms.forms import Published, published
from engine_forms.importing import NOT_IMPORTED, ImportError_
from engine_forms.imports.coerce import cell_text, coercer, is_blank, memoized, reason
from engine_forms.imports.reading import column_letter
from engine_forms.models import ImportMapping
from platform_core.store import Query, query_records

THRESHOLD = 0.6
SELECTS = ("select", "multiselect")
SPLIT = re.compile(r"[,，、;；|\n]")

# Words a spreadsheet uses for a field, by what the field is; the first word of a group
# is matched against the field's label, the type (if any) prefers fields of that type.
SYNONYMS: list[tuple[str | None, tuple[str, ...]]] = [
    ("phone", ("手机", "手机号", "手机号码", "移动电话", "联系电话", "电话", "电话号码",
               "联系方式", "mobile", "phone", "tel", "cellphone")),
    ("id_card", ("身份证号", "身份证", "身份证号码", "证件号", "证件号码", "身份证件号",
                 "idcard", "idno", "idnumber")),
    (None, ("姓名", "客户姓名", "客户名称", "名字", "客户", "借款人", "name",
            "customername", "fullname")),
    (None, ("性别", "gender", "sex")),
    ("money", ("金额", "贷款金额", "申请金额", "借款金额", "申请额度", "额度", "amount")),
    ("money", ("月收入", "收入", "月薪", "工资", "income", "salary")),
    ("email", ("邮箱", "电子邮箱", "电子邮件", "email", "mail")),
    (None, ("城市", "所在城市", "地区", "city")),
    (None, ("微信号", "微信", "wechat", "weixin")),
    (None, ("备注", "说明", "remark", "remarks", "note", "notes", "comment")),
    (None, ("来源渠道", "来源", "渠道", "客户来源", "source", "channel")),
    (None, ("客户状态", "状态", "status")),
    (None, ("客户等级", "等级", "级别", "grade", "level")),
    ("date", ("申请日期", "申请时间", "进件日期", "applydate")),
    ("date", ("日期", "date")),
]
# words for select options: any word of a group reaches an option labelled by another
VALUE_SYNONYMS: list[frozenset[str]] = [
    frozenset({"男", "男性", "男士", "先生", "m", "male", "man"}),
    frozenset({"女", "女性", "女士", "小姐", "f", "female", "woman"}),
    frozenset({"是", "有", "yes", "y", "true", "1", "√", "✓", "对"}),
    frozenset({"否", "无", "没有", "no", "n", "false", "0", "×", "✗", "不"}),
]
NOTE = re.compile(r"[（(\[【<《].*?[）)\]】>》]")


class ColumnMap(BaseModel):
    """One column of the file: which field it fills (None = ignored), and for a select
    how its texts map to options, for a relation by which unique field of the target."""

    column: int
    header: str
    field: str | None = None
    score: float = 0.0
    values: dict[str, Any] = Field(default_factory=dict)  # source text → option value
    by: str | None = None


class Mapping(BaseModel):
    """A file's column mapping; saved by name for the next file of the same shape."""

    sheet: str | None = None
    header_row: int | None = None
    columns: list[ColumnMap]


# -- suggesting ---------------------------------------------------------------------------


def norm(text: str) -> str:
    """Lower-case, full-width folded, without notes, spaces and punctuation."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    text = NOTE.sub("", text)
    return "".join(c for c in text if c.isalnum())


@lru_cache(maxsize=4096)
def _pinyin(text: str) -> tuple[str, str]:
    """(full pinyin, initials) of a label: 手机 → ("shouji", "sj")."""
    from pypinyin import Style, lazy_pinyin

    full = "".join(lazy_pinyin(text)).casefold()
    initials = "".join(p[:1] for p in lazy_pinyin(text, style=Style.NORMAL)).casefold()
    return norm(full), norm(initials)


def importable(pub: Published) -> list[Any]:
    return [f for f in pub.spec.fields if f.type not in NOT_IMPORTED
            and not getattr(f.field_type, "computed", False)]


def _names(field: Any) -> set[str]:
    return {norm(n) for n in (field.key, field.label, *(field.labels or {}).values()) if n}


def _group_of(word: str) -> tuple[str | None, frozenset[str]] | None:
    for kind, words in SYNONYMS:
        if word in {norm(w) for w in words}:
            return kind, frozenset(norm(w) for w in words)
    return None


def score(header: str, field: Any) -> float:
    """How well ``header`` names ``field``, 0–1."""
    raw = (header or "").strip()
    if not raw:
        return 0.0
    if raw in (field.key, field.label) or raw in (field.labels or {}).values():
        return 1.0
    names = _names(field)
    parts = [norm(raw)] + [norm(p) for p in reversed(re.split(r"[/／]", raw)) if p.strip()]
    best = 0.0
    for i, text in enumerate(dict.fromkeys(p for p in parts if p)):
        lower = 0.0 if i == 0 else 0.05  # the lower part of "联系方式/手机" a bit less sure
        if text in names:
            best = max(best, 0.95 - lower)
            continue
        best = max(best, _synonym(text, field, names) - lower, _by_pinyin(text, field) - lower,
                   _similar(text, names) - lower)
    return round(best, 3)


def _synonym(text: str, field: Any, names: set[str]) -> float:
    group = _group_of(text)
    if group is None:
        return 0.0
    kind, words = group
    if names & words:
        return 0.9 if kind is None or kind == field.type else 0.85
    if kind is not None and kind == field.type and kind in ("phone", "id_card", "email"):
        return 0.8  # the only phone field takes "联系电话" even if labelled otherwise
    return 0.0


def _by_pinyin(text: str, field: Any) -> float:
    if not text.isascii() or not text.isalpha():
        return 0.0
    full, initials = _pinyin(field.label)
    if text == full:
        return 0.85
    if len(text) >= 2 and text == initials:
        return 0.75
    return 0.0


def _similar(text: str, names: set[str]) -> float:
    """A label inside the header ("备注说明" ⊃ 备注: 0.6–0.85 by how much of it the label
    is), else difflib's ratio (≥ 0.6) scaled to at most 0.8."""
    inside = max((0.6 + 0.3 * len(n) / len(text) for n in names
                  if len(n) >= 2 and n in text), default=0.0)
    ratio = max((SequenceMatcher(None, text, n).ratio() for n in names), default=0.0)
    return max(min(inside, 0.85), ratio * 0.8 if ratio >= THRESHOLD else 0.0)


def suggest(pub: Published, header: list[str], *, session: Session | None = None
            ) -> Mapping:
    """A mapping of ``header`` onto ``pub``'s importable fields (see the module doc).
    Given a ``session``, a relation column also gets the unique field of the target form
    its title names (``by``): "客户手机" → the customer's 手机, "客户身份证" → 身份证号."""
    fields = importable(pub)
    pairs = []
    for col, title in enumerate(header):
        for field in fields:
            s = score(title, field)
            if s >= THRESHOLD:
                pairs.append((s, -col, field.key))
    taken: dict[int, tuple[str, float]] = {}
    used: set[str] = set()
    for s, neg_col, key in sorted(pairs, reverse=True):
        if -neg_col in taken or key in used:
            continue
        taken[-neg_col] = (key, s)
        used.add(key)
    columns = []
    for col, title in enumerate(header):
        key, s = taken.get(col, (None, 0.0))
        field = pub.spec.field(key) if key else None
        by = guess_by(session, pub, field, title) if session is not None and field is not None \
            and field.type == "relation" else None
        columns.append(ColumnMap(column=col, header=title or "", field=key, score=s, by=by))
    return Mapping(columns=columns)


def guess_by(session: Session, pub: Published, field: Any, title: str) -> str | None:
    """The unique field of the relation's target form that ``title`` names once the
    relation's own label is taken off it ("客户手机" − "客户" → 手机); None if none does
    (the cells are then record ids)."""
    target = published(session, pub.app, field.config["target"])
    rest = norm(title)
    for name in sorted(_names(field), key=len, reverse=True):
        if name and name in rest and name != rest:
            rest = rest.replace(name, "", 1)
            break
    else:
        return None
    scored = [(score(rest, f), f.key) for f in target.spec.fields if f.unique]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= THRESHOLD else None


# -- select values ------------------------------------------------------------------------


def option_for(field: Any, text: str) -> str | None:
    """The option ``text`` names: its value, label or other-language label (case, width
    and spaces ignored), a synonym of one (男 ↔ M ↔ male), or a part of exactly one
    label (官网 → 官网/小程序); None if none does."""
    wanted = norm(text)
    if not wanted:
        return None
    options = field.config.get("options", [])
    for option in options:
        names = {norm(option["value"]), norm(option["label"]),
                 *(norm(v) for v in (option.get("labels") or {}).values())}
        if wanted in names:
            return option["value"]
    for group in VALUE_SYNONYMS:
        if wanted in group:
            for option in options:
                names = {norm(option["value"]), norm(option["label"]),
                         *(norm(v) for v in (option.get("labels") or {}).values())}
                if names & group:
                    return option["value"]
    # a part of exactly one label: 官网 → 官网/小程序, 转介绍 → 老客户转介绍
    inside = [o["value"] for o in options if len(wanted) >= 2 and wanted in norm(o["label"])]
    return inside[0] if len(inside) == 1 else None


def select_values(pub: Published, mapping: Mapping,
                  rows: Iterable[tuple[int, list[Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per select column's field: each distinct text with its count and the option it
    maps to (the mapping's own choice first; None when nothing matches)."""
    columns = [(c, pub.spec.field(c.field)) for c in mapping.columns
               if c.field and pub.spec.field(c.field) is not None
               and pub.spec.field(c.field).type in SELECTS]
    counts: dict[str, Counter[str]] = {f.key: Counter() for _c, f in columns}
    for _number, cells in rows:
        for col, field in columns:
            cell = cells[col.column] if col.column < len(cells) else None
            if is_blank(cell):
                continue
            text = cell_text(cell)
            parts = [p.strip() for p in SPLIT.split(text)] if field.type == "multiselect" \
                else [text]
            counts[field.key].update(p for p in parts if p)
    out = {}
    for col, field in columns:
        out[field.key] = [{"value": text, "count": n,
                           "maps_to": col.values[text] if text in col.values
                           else option_for(field, text)}
                          for text, n in counts[field.key].most_common()]
    return out


# -- reading rows -------------------------------------------------------------------------


def _select_coercer(field: Any, values: dict[str, Any], base: Callable[[Any], Any]
                    ) -> Callable[[Any], Any]:
    def one(text: str) -> Any:
        if text in values:
            return values[text]
        found = option_for(field, text)
        if found is None:
            return base(text)  # refused by the type, with the list of options
        return found

    if field.type == "select":
        return lambda cell: one(cell_text(cell))

    def many(cell: Any) -> Any:
        chosen = [one(p.strip()) for p in SPLIT.split(cell_text(cell)) if p.strip()]
        chosen = [c for c in chosen if c is not None]
        return field.field_type.coerce(chosen, field) if chosen else None
    return many


class RowReader:
    """Rows of a file → payloads, with every problem named by row, column and reason.

    Built once per (form, mapping): it checks that the caller may write every mapped
    field (hidden ones are unknown, read-only ones refused), compiles one coercer per
    column and, per relation column, the target form, the caller's row scope there and
    the unique field used to find the record.
    """

    def __init__(self, session: Session, caller: Any, pub: Published, mapping: Mapping):
        from engine_forms.service import check_payload

        self.session, self.caller, self.pub = session, caller, pub
        self.columns: list[tuple[int, str, Any, Callable[[Any], Any]]] = []
        self.relations: dict[int, tuple[Published, Any, str, Any]] = {}
        seen: set[str] = set()
        for col in mapping.columns:
            if not col.field:
                continue
            field = pub.spec.field(col.field)
            if field is None or field.type in NOT_IMPORTED \
                    or getattr(field.field_type, "computed", False):
                raise ImportError_(f"mapping: column {column_letter(col.column)} "
                                   f"({col.header}) cannot fill {col.field!r}",
                                   field="mapping", column=column_letter(col.column))
            if col.field in seen:
                raise ImportError_(f"mapping: field {col.field!r} is filled by two columns",
                                   field="mapping")
            seen.add(col.field)
            fn = coercer(field)
            if field.type in SELECTS:
                fn = memoized(_select_coercer(field, col.values, fn))
            elif field.type == "relation" and col.by:
                self.relations[col.column] = self._relation(field, col.by)
            self.columns.append((col.column, col.header, field, fn))
        check_payload(pub, caller.access, dict.fromkeys(seen))

    def _relation(self, field: Any, by: str) -> tuple[Published, Any, str, Any]:
        from engine_forms.service import scoped_query

        target = published(self.session, self.pub.app, field.config["target"])
        access = self.caller.principal.access(self.pub.app, target.spec.key)
        spec = target.spec.field(by)
        if spec is None or not spec.unique or not access.allows("read") \
                or not access.readable(by):
            raise ImportError_(f"mapping: {by!r} is not a unique field of form "
                               f"{target.spec.key} you can read", field="mapping")
        caller = replace(self.caller, access=access)
        return target, spec, by, lambda flt: scoped_query(self.session, caller, "read", flt)

    def read(self, rows: list[tuple[int, list[Any]]]
             ) -> list[tuple[int, dict[str, Any] | None, list[dict[str, Any]]]]:
        """Per row: (row number, payload or None when it has problems, its problems)."""
        found = {col: self._resolve(col, rows) for col in self.relations}
        out = []
        for number, cells in rows:
            payload: dict[str, Any] = {}
            problems: list[dict[str, Any]] = []
            for col, header, field, fn in self.columns:
                cell = cells[col] if col < len(cells) else None
                if is_blank(cell):
                    continue
                try:
                    if col in found:
                        value = found[col].get(cell_text(cell))
                        if isinstance(value, Exception):
                            raise value
                    else:
                        value = fn(cell)
                except ValueError as exc:
                    zh, en = reason(exc)
                    problems.append({"row": number, "column": column_letter(col),
                                     "header": header, "field": field.key,
                                     "value": cell_text(cell), "reason": f"{field.label}: {zh}",
                                     "reason_en": f"{field.key}: {en}"})
                    continue
                if value is not None:
                    payload[field.key] = value
            out.append((number, None if problems else payload, problems))
        return out

    def _resolve(self, col: int, rows: list[tuple[int, list[Any]]]) -> dict[str, Any]:
        """Each distinct text of a relation column → the target record's id, or the
        error to report; one query for the whole chunk."""
        from engine_forms.imports.coerce import coerce as coerce_cell
        from engine_forms.sealing import FieldCrypt

        target, spec, by, scoped = self.relations[col]
        texts: dict[str, Any] = {}
        for _number, cells in rows:
            cell = cells[col] if col < len(cells) else None
            if is_blank(cell) or cell_text(cell) in texts:
                continue
            try:
                texts[cell_text(cell)] = coerce_cell(spec, cell)
            except ValueError as exc:
                texts[cell_text(cell)] = exc
        values = sorted({v for v in texts.values() if not isinstance(v, Exception)}, key=str)
        ids: dict[Any, int] = {}
        if values:
            crypt = FieldCrypt(target, self.caller.keyring)
            flt = scoped(crypt.blind_filter({"field": by, "op": "in", "value": values}))
            page = query_records(self.session, Query(target.fields, filter=flt, sort=[by],
                                                     limit=len(values) + 1))  # by its index
            for rec in page.records:
                ids[crypt.open_value(by, rec.data.get(by))] = rec.id
        out: dict[str, Any] = {}
        noun = target.spec.name
        for text, value in texts.items():
            if isinstance(value, Exception) or value in ids:
                out[text] = value if isinstance(value, Exception) else ids[value]
            else:
                out[text] = refuse("not_found", f"没有{spec.label}为 {text} 的{noun}",
                                   f"no {target.spec.key} with {by} {text}")
        return out


# -- saved mappings -----------------------------------------------------------------------


def save_mapping(session: Session, caller: Any, pub: Published, name: str,
                 mapping: Mapping) -> None:
    """Create or replace the form's mapping called ``name``; audited."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ImportError_("name: a mapping needs a name of 1–100 characters", field="name")
    row = session.scalars(select(ImportMapping).where(
        ImportMapping.app == pub.app, ImportMapping.form == pub.spec.key,
        ImportMapping.name == name)).first()
    spec = mapping.model_dump(mode="json")
    if row is None:
        row = ImportMapping(app=pub.app, form=pub.spec.key, name=name, spec=spec,
                            created_by=caller.principal.actor.user_id)
        session.add(row)
    else:
        row.spec = spec
        row.updated_at = datetime.now(UTC)
    session.flush()
    caller.audit(session, "import.mapping.save", pub, None, name=name,
                 fields=sorted(c.field for c in mapping.columns if c.field))


def list_mappings(session: Session, pub: Published) -> list[dict[str, Any]]:
    rows = session.scalars(select(ImportMapping).where(
        ImportMapping.app == pub.app, ImportMapping.form == pub.spec.key
    ).order_by(ImportMapping.name)).all()
    return [{"name": r.name, "mapping": r.spec, "updated_at": r.updated_at.isoformat()
             if r.updated_at else None} for r in rows]


def get_mapping(session: Session, pub: Published, name: str) -> Mapping:
    from platform_core.errors import NotFound

    row = session.scalars(select(ImportMapping).where(
        ImportMapping.app == pub.app, ImportMapping.form == pub.spec.key,
        ImportMapping.name == name)).first()
    if row is None:
        raise NotFound(f"no saved import mapping named {name!r}", name=name)
    return Mapping.model_validate(row.spec)

