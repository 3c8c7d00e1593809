"""A form's record view (``view`` in the form spec): what the record page shows around the
fields — the 360° view of a customer, a loan case, a supplier.

```json
"view": {
  "header": {"fields": ["mobile", "level", "source"], "tags": "tags", "status": "status"},
  "cards": [{"field": "loan_total"}, {"field": "loan_count"}],
  "related": [{"form": "loan_case", "via": "customer", "label": "贷款业务",
               "columns": ["case_no", "amount", "stage"], "sort": "-created_at",
               "limit": 5, "new": true}],
  "actions": [{"type": "create", "form": "follow_up", "via": "customer", "label": "记跟进"},
              {"type": "create", "form": "loan_case", "via": "customer",
               "start_flow": "loan_service", "label": "新建贷款"},
              {"type": "upload", "field": "documents", "label": "上传资料"},
              {"type": "message", "label": "发短信"}]
}
```

- ``header``: key fields shown under the title, a multiselect shown as tags, a select
  shown as the status badge; the owner is always there.
- ``cards``: figures (roll-ups, formulas, numbers, money) shown as cards.
- ``related``: lists of the records of another form that point here through its
  relation field ``via`` (newest first unless ``sort`` says otherwise), with a "new" button
  that pre-links this record. A list naming a form or a relation that does not exist (yet)
  is left out of the page: forms are installed one by one, so this is not checked when the
  form is saved.
- ``actions``: quick actions — ``create`` a related record (optionally starting a flow on
  it), ``upload`` a file into an attachment field, send a ``message`` (the app's manual
  rules for this form: their channel and template are the rules').

Only this form's own fields are checked here (``problems``); everything is optional.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KEY = "^[a-z][a-z0-9_]{0,62}$"
SORT = "^-?[a-z][a-z0-9_]{0,62}$"
FIGURE_TYPES = frozenset({"rollup", "formula", "number", "money", "percent", "date",
                          "auto_number"})


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Header(_Strict):
    fields: tuple[str, ...] = Field(default=(), max_length=8)
    tags: str | None = None
    status: str | None = None


class Card(_Strict):
    field: str
    label: str | None = Field(default=None, max_length=40)
    labels: dict[str, str] | None = None


class Related(_Strict):
    form: str = Field(pattern=KEY)
    via: str = Field(pattern=KEY)
    label: str | None = Field(default=None, max_length=40)
    labels: dict[str, str] | None = None
    columns: tuple[str, ...] = Field(default=(), max_length=8)
    sort: str = Field(default="-created_at", pattern=SORT)
    limit: int = Field(default=5, ge=1, le=50)
    new: bool = True


class Action(_Strict):
    type: Literal["create", "upload", "message"]
    label: str | None = Field(default=None, max_length=40)
    labels: dict[str, str] | None = None
    form: str | None = Field(default=None, pattern=KEY)  # create
    via: str | None = Field(default=None, pattern=KEY)  # create
    start_flow: str | None = Field(default=None, pattern=KEY)  # create
    field: str | None = Field(default=None, pattern=KEY)  # upload
    rules: tuple[str, ...] | None = None  # message: these manual rules (default: all)


class RecordView(_Strict):
    header: Header = Field(default_factory=Header)
    cards: tuple[Card, ...] = Field(default=(), max_length=8)
    related: tuple[Related, ...] = Field(default=(), max_length=10)
    actions: tuple[Action, ...] = Field(default=(), max_length=8)


def meta_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of ``view`` and the definitions it refers to (``view_*``), to go
    into the form meta-schema's ``$defs``."""
    schema = RecordView.model_json_schema(ref_template="#/$defs/view_{model}")
    defs = {f"view_{k}": v for k, v in schema.pop("$defs", {}).items()}
    return schema, defs


def problems(view: RecordView, spec: Any) -> list[str]:
    """References to this form's own fields that are wrong (``spec``: the ``FormSpec``)."""
    out: list[str] = []

    def need(key: str | None, where: str, types: frozenset[str] | None = None,
             what: str = "") -> None:
        if key is None:
            return
        field = spec.field(key)
        if field is None:
            out.append(f"view.{where}: {key!r} is not a field of the form")
        elif types is not None and field.type not in types:
            out.append(f"view.{where}: {key!r} is a {field.type} field, not {what}")

    for i, key in enumerate(view.header.fields):
        need(key, f"header.fields[{i}]")
    need(view.header.tags, "header.tags", frozenset({"multiselect"}), "a multiselect")
    need(view.header.status, "header.status", frozenset({"select"}), "a select")
    for i, card in enumerate(view.cards):
        need(card.field, f"cards[{i}]", FIGURE_TYPES, "a figure")
    for i, action in enumerate(view.actions):
        where = f"actions[{i}]"
        if action.type == "create" and not (action.form and action.via):
            out.append(f"view.{where}: create needs 'form' and 'via'")
        if action.type == "upload":
            if not action.field:
                out.append(f"view.{where}: upload needs 'field'")
            need(action.field, where, frozenset({"attachment"}), "an attachment")
    seen = [(r.form, r.via) for r in view.related]
    for pair in sorted({p for p in seen if seen.count(p) > 1}):
        out.append(f"view.related: {pair[0]}.{pair[1]} is listed twice")
    return out

