"""The flow designer script's words, in the page's language (``{name}`` filled in by the
script). Names of node types, strategies, modes and operations are keyed by the engine's
own keys (``engine_flows.node_options``); a key without a word here shows as itself."""

from __future__ import annotations

from typing import Any

from frontend.i18n import _

ORDER = ["start", "user_task", "approval", "gateway", "parallel", "join", "service",
         "timer", "subflow", "end"]


def _named() -> dict[str, Any]:
    return {
        "types": {"start": _("开始"), "end": _("结束"), "user_task": _("办理"),
                  "approval": _("审批"), "gateway": _("条件分支"), "parallel": _("并行分支"),
                  "join": _("并行汇合"), "service": _("自动处理"), "timer": _("定时等待"),
                  "subflow": _("子流程")},
        "mode_single": _("单人审批"), "mode_any": _("或签（一人同意即可）"),
        "mode_all": _("会签（全部同意）"), "mode_sequential": _("依次审批"),
        "strategy_users": _("指定用户"), "strategy_role": _("角色"),
        "strategy_department_role": _("本部门的角色"), "strategy_field": _("记录中的人员字段"),
        "strategy_initiator": _("发起人"), "strategy_initiator_manager": _("发起人的主管"),
        "strategy_round_robin": _("角色成员轮流"), "strategy_least_loaded": _("角色中待办最少者"),
        "strategy_mapping": _("按字段值分派"),
        "op_complete": _("提交"), "op_approve": _("同意"), "op_reject": _("驳回"),
        "op_return": _("退回上一步"), "op_transfer": _("转交"), "op_delegate": _("委托"),
        "op_add_signer": _("加签"), "op_claim": _("认领"),
        "col_editable": _("可编辑"), "col_readonly": _("只读"), "col_hidden": _("隐藏"),
        "col_required": _("必填"),
        "wait_days": _("等待天数"), "wait_hours": _("等待小时"), "wait_minutes": _("等待分钟"),
        "action_set_fields": _("设置字段值"),
    }


def flow_strings() -> dict[str, Any]:
    return _named() | {
        "order": ORDER,
        "add": _("添加"), "add_action": _("添加动作"), "any_outcome": _("（任意结果）"),
        "assignee": _("处理人"), "at": _("时刻（HH:MM）"), "at_column": _("第 {column} 列："),
        "by_field": _("按字段分组"), "by_field_hint": _("只在该字段指定的部门成员中分派"),
        "cannot_publish": _("还不能发布，先改正这些问题："),
        "check_ok": _("检查通过，可以发布。"), "choose": _("请选择"),
        "choose_field": _("选择字段"), "condition": _("条件"),
        "condition_hint": _("表达式，例如 amount >= 1000000"),
        "condition_ok": _("条件正确"), "default_edge": _("默认"),
        "description": _("说明"), "dry_run": _("试迁移"),
        "dry_run_result": _("试迁移：{movable} 个可迁移，{blocked} 个不能迁移。"),
        "edge_name": _("连线名称"), "edge_title": _("连线：{from} → {to}"),
        "edges_added": _("新增连线"), "edges_changed": _("修改的连线"),
        "edges_removed": _("删除的连线"),
        "escalate_after_hours": _("超时多少小时后升级"), "failed": _("没有完成，请重试。"),
        "field": _("字段"), "flow_form": _("表单"), "flow_key": _("流程键"),
        "flow_name": _("流程名称"), "hours": _("小时"), "id": _("节点键"),
        "map_default": _("其他值交给"), "map_value": _("字段值"),
        "mapping_hint": _("每个字段值交给一个角色"), "migrate": _("迁移"),
        "migrate_from": _("停在 {node} 的实例移到"),
        "migrate_hint": _("选择新版本中对应的节点；节点键不变的自动对应。先试迁移。"),
        "migrate_title": _("迁移运行中的实例"),
        "migrated_result": _("已迁移 {n} 个实例。"), "mode": _("审批方式"),
        "name": _("名称"), "no_fields": _("表单还没有发布的字段。"), "no_sla": _("不限时"),
        "nodes_added": _("新增节点"), "nodes_changed": _("修改的节点"),
        "nodes_removed": _("删除的节点"), "none": _("（无）"), "offset_days": _("前后天数"),
        "on": _("结果"), "operations": _("允许的操作"), "outcomes": _("按钮（结果）"),
        "outcomes_hint": _("用逗号分隔；常用："), "owner": _("记录负责人"),
        "palette_hint": _("拖到画布，或按回车加在画布中央"),
        "preparing": _("正在保存草稿并比较版本…"),
        "problems": _("{n} 个问题："),
        "publish_first": _("这是第一个版本。"),
        "publish_next": _("将发布第 {v} 版（当前第 {old} 版）。"),
        "published": _("已发布第 {v} 版"), "record_field": _("在关联记录上运行"),
        "record_user_field": _("字段"),
        "reject_hint": _("驳回时，审批人可以退回到本实例走过的任一前面步骤。"),
        "reject_limit": _("只允许退回到下面勾选的步骤"),
        "reject_none": _("这一步前面没有可退回的人工步骤。"),
        "remind_before_hours": _("到期前多少小时提醒"), "remove": _("删除"),
        "remove_edge": _("删除连线"), "remove_node": _("删除节点"),
        "required_on": _("按“{outcome}”时必填"), "role": _("角色"),
        "running": _("运行中的旧版本实例：{n} 个（它们留在旧版本，除非迁移）"),
        "save_first": _("先保存草稿，再检查。"), "saved": _("草稿已保存"),
        "select_hint": _("选中一个节点或连线来编辑它。"),
        "service_actions": _("自动执行的动作"), "settings_json": _("设置（JSON）"),
        "sla": _("时限"), "step_fields": _("本步骤的字段"), "strategy": _("分派方式"),
        "subflow": _("子流程"), "this_record": _("本记录"), "until_field": _("或等到日期字段"),
        "users": _("用户"), "wait": _("等待"), "working_days": _("工作日"),
    }
