"""A form's layout as a page shows it: sections of field rows, each with its widget,
current value, display text, visibility, requiredness and error.

The same builder serves the record page (view, new, edit), the live check while typing
and the task page (where the step, not the role, decides which fields are editable), so
every page renders and parses a field the same way.

Order of events for one render: the viewer's field rights (hidden fields are left out,
read-only ones shown as text) → the step's field matrix, if any → the form's
``visible_if`` / ``required_if`` evaluated over the values (``field_states``, the save's
own evaluation) → each field's display text (``values.Shown``) and widget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms.forms import Published
from engine_forms.records import env_for
from engine_forms.spec import FieldSpec, Section, Tab
from engine_forms.validation import FieldState, field_states
from frontend.i18n import _
from frontend.workspace.values import Shown, ids_of, label_of, subtable_columns, wan
from frontend.workspace.widgets import widget_of
from platform_core.security.models import Department, User

WIDE = frozenset({"subtable", "textarea", "attachment", "address"})  # full-width rows


@dataclass
class FieldView:
    """One field row of a page."""

    spec: FieldSpec
    macro: str
    value: Any  # as the API gives it (inputs are filled from it)
    text: Markup  # as people read it
    editable: bool
    required: bool
    visible: bool = True
    masked: bool = False
    error: str = ""
    hint: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    columns: list[FieldView] = field(default_factory=list)  # a subtable's columns
    rows: list[list[FieldView]] = field(default_factory=list)  # a subtable's rows
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def label(self) -> str:
        return label_of(self.spec)

    def reading(self) -> Markup:
        """The whole row of a field shown as text (``_fields.html``'s ``sections`` for
        a field the page does not let the viewer change). Built here, not in the macro:
        a record page has dozens of these and the macro call was most of its render."""
        key, kind = escape(self.key), escape(self.spec.type)
        wide = " wide" if self.spec.type in WIDE else ""
        text = self.text or "—"
        if self.macro == "computed":
            text = Markup(f'<output id="out-{key}">{text}</output>')
        help_ = Markup(f'<p class="help small muted">{escape(self.spec.help)}</p>') \
            if self.spec.help else ""
        return Markup(
            f'<div class="field{wide}" id="row-{key}" data-type="{kind}">'
            f'<span class="label" id="l-{key}">{escape(self.label)}</span>'
            f'<div class="value" data-field="{key}" aria-labelledby="l-{key}">{text}</div>'
            f'{help_}{self.state()}</div>')

    def state(self, oob: bool = False) -> Markup:
        """The row's state element (``st-f-<key>``): visible / required flags, the
        error and the hint, which the live check replaces."""
        inner = (Markup(f'<span class="error" role="alert">{escape(self.error)}</span>')
                 if self.error else "")
        if self.hint:
            inner += Markup(f'<span class="hint">{escape(self.hint)}</span>')
        swap = ' hx-swap-oob="true"' if oob else ""
        return Markup(
            f'<div class="field-state" id="st-f-{escape(self.key)}" '
            f'data-visible="{1 if self.visible else 0}" '
            f'data-required="{1 if self.required else 0}"'
            f'{swap}>{inner}</div>')


@dataclass
class SectionView:
    title: str
    columns: int
    fields: list[FieldView]


def with_attachments(sections: Any) -> bool:
    """Whether a page's sections show an attachment field (Jinja test: such a page loads
    the attachment preview)."""
    return any(f.spec.type == "attachment" for s in sections or () for f in s.fields)


@dataclass
class Editing:
    """Which fields a page lets the viewer change, and what they typed."""

    editable: frozenset[str]
    required: frozenset[str] = frozenset()  # required by a flow step on top of the form
    errors: Mapping[str, str] = field(default_factory=dict)
    typed: Mapping[str, Any] | None = None  # values as posted (after a refusal)


def _sections(pub: Published) -> list[tuple[str, int, tuple[str, ...]]]:
    out: list[tuple[str, int, tuple[str, ...]]] = []
    for item in pub.spec.layout:
        if isinstance(item, Section):
            out.append((label_of(item), item.columns, item.fields))
        elif isinstance(item, Tab):
            out += [(f"{item.tab} · {label_of(s)}", s.columns, s.fields)
                    for s in item.sections]
    placed = {k for _t, _c, keys in out for k in keys}
    rest = tuple(f.key for f in pub.spec.fields if f.key not in placed)
    if rest:
        out.append((_("其他") if out else "", 1 if out else 2, rest))
    return out


def states_for(session: Session, pub: Published, data: Mapping[str, Any]
               ) -> dict[str, FieldState]:
    return field_states(pub.compiled, data, env_for(session))


def people_options(session: Session, kind: str) -> list[dict[str, Any]]:
    """Active users or departments for a picker (a small office's directory)."""
    if kind == "user":
        rows = session.execute(select(User.id, User.display_name).where(
            User.status == "active").order_by(User.display_name).limit(2000)).all()
    else:
        rows = session.execute(select(Department.id, Department.name)
                               .order_by(Department.name).limit(2000)).all()
    return [{"value": str(i), "label": n} for i, n in rows]


class Builder:
    """Builds the field rows of one record for one viewer on one page."""

    def __init__(self, session: Session, pub: Published, shown: Shown, editing: Editing,
                 data: Mapping[str, Any], *, only: frozenset[str] | None = None):
        self.session, self.pub, self.shown, self.editing = session, pub, shown, editing
        self.data = data
        self.only = only  # the fields a flow step shows (else: those the role may read)
        self.states = states_for(session, pub, data)
        self._people: dict[str, list[dict[str, Any]]] = {}

    def sections(self) -> list[SectionView]:
        out = []
        for title, columns, keys in _sections(self.pub):
            views = [self.view(f) for k in keys
                     if (f := self.pub.spec.field(k)) is not None and self.shows(k)]
            if views:
                out.append(SectionView(title, columns, views))
        return out

    def shows(self, key: str) -> bool:
        if self.only is not None:
            return key in self.only
        return self.shown.caller.access.readable(key)

    def view(self, spec: FieldSpec) -> FieldView:
        key, widget = spec.key, widget_of(spec)
        value = self.data.get(key)
        typed = self.editing.typed
        editable = key in self.editing.editable and not widget.readonly
        if typed is not None and key in typed and editable:
            value = typed[key]
        state = self.states.get(key, FieldState(True, spec.required))
        masked = key in self.shown.masked
        view = FieldView(
            spec=spec, macro=widget.macro, value=value,
            text=self.shown.text(spec, self.data.get(key), full=True),
            editable=editable, visible=state.visible,
            required=editable and (state.required or key in self.editing.required),
            masked=masked, error=self.editing.errors.get(key, ""))
        if editable:
            self._fill(view)  # a read-only row needs its text alone
        elif spec.type == "money" and value not in (None, ""):
            view.hint = wan(value)
        return view

    def _fill(self, view: FieldView) -> None:
        spec, value = view.spec, view.value
        if spec.type in ("select", "multiselect"):
            view.options = [{"value": o["value"], "label": label_of(o)}
                            for o in spec.config.get("options", [])]
        elif spec.type in ("user", "department"):
            if spec.type not in self._people:
                self._people[spec.type] = people_options(self.session, spec.type)
            view.options = self._people[spec.type]
        elif spec.type == "money" and value not in (None, ""):
            view.hint = wan(value)
        elif spec.type == "relation":
            target = spec.config["target"]
            view.extra["options_url"] = f"/apps/{self.pub.app}/forms/{self.pub.spec.key}" \
                f"/options/{spec.key}"
            view.extra["quick_url"] = f"/apps/{self.pub.app}/forms/{target}/quick"
            view.options = [{"value": str(i), "label": self.shown.titles.get(target, {})
                             .get(i, f"#{i}")} for i in ids_of(value)]
            view.extra["target"] = target
            access = self.shown.caller.principal.access(self.pub.app, target)
            view.extra["can_create"] = access.allows("create") and view.editable
            view.extra["target_name"] = label_of(self.shown.form(target).spec)
        elif spec.type == "subtable":
            self._subtable(view)
        elif spec.type == "attachment":
            view.extra["files"] = self.shown.files.get(spec.key, [])
            view.extra["upload_url"] = f"/api/v1/apps/{self.pub.app}/forms/" \
                f"{self.pub.spec.key}/attachments"

    def _subtable(self, view: FieldView) -> None:
        columns = subtable_columns(view.spec)
        view.columns = [FieldView(spec=c, macro=widget_of(c).macro, value=None,
                                  text=Markup(""), editable=view.editable,
                                  required=c.required) for c in columns]
        for column in view.columns:
            if column.spec.type in ("select", "multiselect"):
                column.options = [{"value": o["value"], "label": label_of(o)}
                                  for o in column.spec.config.get("options", [])]
            elif column.spec.type in ("user", "department"):
                column.options = people_options(self.session, column.spec.type)
        rows = view.value if isinstance(view.value, list) else []
        for row in rows:
            if not isinstance(row, dict):
                continue
            cells = []
            for column in view.columns:
                cell = FieldView(spec=column.spec, macro=column.macro,
                                 value=row.get(column.key),
                                 text=self.shown.text(column.spec, row.get(column.key)),
                                 editable=view.editable, required=column.required,
                                 options=column.options)
                cells.append(cell)
            view.rows.append(cells)
