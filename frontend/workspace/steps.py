"""Working one flow task from a page — shared by the task page (``/tasks/{id}``) and the
record page's "where the case stands" panel (``pages_stands``).

Order of events for one submit: ``read_submission`` (the step's editable fields parsed by
the workspace widgets, the comment, the chosen action and its target) → ``perform`` (one
write transaction through ``engine_flows.tasks``/``handover``: claim, complete with an
outcome, approve, reject — along the step's reject edge or back to an earlier step —,
return, transfer, delegate) → the page redirects with a flash message (``FLASH_OF``), or,
on a refusal, shows ``problems_of`` beside the fields with what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine_flows import handover, inbox, tasks
from engine_flows.tasks import Who
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from frontend.i18n import N_, _
from frontend.web import FLASH
from frontend.workspace.fields import Builder, Editing
from frontend.workspace.pages_record import problems_by_field
from frontend.workspace.values import Shown, label_of
from frontend.workspace.widgets import Posted, payload_of
from platform_core.errors import DomainError, InvalidInput

OUTCOMES = {"submit": N_("提交"), "done": N_("完成"), "approve": N_("同意"),
            "reject": N_("驳回"), "lost": N_("未成交"), "won": N_("成交"), "pass": N_("通过"),
            "fail": N_("不通过"), "cancel": N_("取消")}
FLASH.update({"task_rejected": N_("已驳回"), "task_returned": N_("已退回上一步"),
              "task_transferred": N_("任务已转交"), "task_delegated": N_("任务已委托"),
              "flow_started": N_("流程已发起")})
FLASH_OF = {"claim": "task_claimed", "reject": "task_rejected", "return": "task_returned",
            "transfer": "task_transferred", "delegate": "task_delegated"}


def outcome_labels() -> dict[str, str]:
    """The outcome buttons' words in the page's language (a flow's own outcome keys that
    have no word here are shown as they are, escaped like any metadata)."""
    return {k: _(v) for k, v in OUTCOMES.items()}


def step_sections(s: Any, ctx: Any, principal: Any, detail: dict[str, Any],
                  typed: dict[str, Any] | None, errors: dict[str, str], *,
                  editable_only: bool = False) -> list[Any]:
    """The record as the step shows it, through the workspace's field rows: the step's
    editable fields as widgets (required ones marked), the rest as text — or, where the
    record is already on the page (``editable_only``), the editable fields alone."""
    pub = published(s, detail["app"], detail["form"])
    step = detail["step"]["fields"] or {}
    editable = frozenset(step.get("editable", [])) if detail["status"] == "open" \
        else frozenset()
    data = detail["record"]["data"]
    caller = Caller(principal, principal.access(detail["app"], detail["form"]), ctx.keyring)
    shown = Shown.of(s, caller, pub, [{"data": data}])
    shown.add_files(data)
    editing = Editing(editable, frozenset(step.get("required", [])), errors, typed)
    only = editable if editable_only else frozenset(data) | editable
    # what was typed fills the inputs (``Editing.typed``), not the text and states: a
    # refused value may not even parse as its type
    sections = Builder(s, pub, shown, editing, data, only=only).sections()
    buttons = _only_for(step)
    for section in sections:
        for view in section.fields:
            if view.editable and view.key in buttons:
                # shown beside the label: "「提交」时必填"
                view.extra["required_on"] = "、".join(
                    f"「{outcome_labels().get(o, o)}」" for o in buttons[view.key])
    return sections


def _only_for(step: dict[str, Any]) -> dict[str, list[str]]:
    """Field → the outcomes that need it, for fields the step requires for some outcomes
    only (``fields.required_on``; the ones required for every outcome carry the plain
    required mark)."""
    always = set(step.get("required", []))
    out: dict[str, list[str]] = {}
    for outcome, keys in (step.get("required_on") or {}).items():
        for key in keys:
            if key not in always or outcome == "reject":
                out.setdefault(key, []).append(outcome)
    return out


def needs_of(s: Any, detail: dict[str, Any]) -> list[dict[str, str]]:
    """Per outcome button that needs fields of its own: the button's key, its word and
    the fields' labels ("「提交」前须填写：匹配产品"), for a line beside the buttons."""
    step = detail["step"]["fields"] or {}
    required_on = step.get("required_on") or {}
    if not required_on or detail["status"] != "open":
        return []
    pub = published(s, detail["app"], detail["form"])
    labels = {f.key: label_of(f) for f in pub.spec.fields}
    return [{"outcome": o, "button": outcome_labels().get(o, o),
             "fields": "、".join(labels.get(k, k) for k in keys)}
            for o, keys in required_on.items() if keys]


def record_title(s: Any, ctx: Any, principal: Any, detail: dict[str, Any]) -> str:
    pub = published(s, detail["app"], detail["form"])
    caller = Caller(principal, principal.access(detail["app"], detail["form"]), ctx.keyring)
    titles = service.titles(s, caller, pub, {detail["record_id"]})
    return titles.get(detail["record_id"], f"#{detail['record_id']}")


@dataclass
class Submission:
    """What one submit asks: ``action`` (``claim``, ``reject``, ``return``, ``transfer``,
    ``delegate`` or ``outcome:<key>``), the typed fields, the comment, the reject target
    (an earlier step, or the step's reject edge when empty) and the chosen colleague."""

    action: str
    comment: str
    typed: dict[str, Any] = field(default_factory=dict)
    to: str | None = None
    user: str = ""

    @property
    def flash(self) -> str:
        return FLASH_OF.get(self.action, "task_done")


def read_submission(s: Any, who: Who, task_id: int, posted: Posted) -> Submission:
    """The posted form as a ``Submission`` (the step's editable fields only)."""
    detail = inbox.task_detail(s, tasks.visible_task(s, task_id, who), who)
    pub = published(s, detail["app"], detail["form"])
    step = detail["step"]["fields"] or {}
    editable = [f for f in pub.spec.fields if f.key in step.get("editable", [])]
    masked = service.masked_keys(pub, who.principal.access(detail["app"], detail["form"]))
    return Submission(action=str(posted.get("action") or ""),
                      comment=str(posted.get("comment") or "").strip()[:2000],
                      typed=payload_of(posted, editable, keep_blank_masked=masked),
                      to=str(posted.get("reject_to") or "") or None,
                      user=str(posted.get("to_user") or ""))


def _colleague(sub: Submission) -> int:
    try:
        return int(sub.user)
    except ValueError:
        raise InvalidInput(_("请选择一位同事"), field="to_user") from None


def perform(ctx: Any, who: Who, task_id: int, sub: Submission) -> None:
    """Run the submission in one transaction through the flow services."""
    with ctx.db.write() as s:
        if sub.action == "claim":
            handover.claim(s, task_id, who)
        elif sub.action == "reject":
            tasks.reject(s, task_id, who, to=sub.to, comment=sub.comment or None)
        elif sub.action == "return":
            tasks.send_back(s, task_id, who, comment=sub.comment or None)
        elif sub.action == "transfer":
            handover.transfer(s, task_id, who, to=_colleague(sub))
        elif sub.action == "delegate":
            handover.delegate(s, task_id, who, to=_colleague(sub))
        else:
            outcome = sub.action.removeprefix("outcome:") or None
            tasks.complete(s, task_id, who, outcome=outcome, data=sub.typed,
                           comment=sub.comment or None,
                           operation="approve" if outcome == "approve" else "complete")


def problems_of(exc: DomainError) -> tuple[dict[str, str], str | None]:
    """A refusal as (message per field, message for the whole form): a step's required
    fields left empty each get "必填" beside them; a task someone closed meanwhile says so
    in words."""
    errors = problems_by_field(exc)
    if not errors and exc.code == "fields_required":
        # the engine's message starts with the fields' labels (「A、B: …」)
        labels = exc.detail.split(":", 1)[0]
        outcome = exc.extra.get("outcome")
        if outcome:  # needed by this button only (``fields.required_on``)
            button = outcome_labels().get(outcome, outcome)
            errors = {k: _("「{button}」时必填").format(button=button)
                      for k in exc.extra.get("fields", [])}
            return errors, _("「{button}」前必须填写：{fields}").format(button=button,
                                                                     fields=labels)
        errors = {k: _("完成此步骤前必须填写") for k in exc.extra.get("fields", [])}
        return errors, _("完成此步骤前必须填写：{fields}").format(fields=labels)
    if errors:
        return errors, None
    if exc.code == "task_closed":
        return {}, _("这个任务已经办理过了（可能是同事刚刚处理），请看最新进度。")
    return {}, exc.detail
