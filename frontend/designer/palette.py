"""What the form designer offers: the field types grouped for its palette, and for each
type the properties its panel edits, generated from the type's own ``config_schema``.

A property is described by its ``kind``, which picks the panel's input: ``bool``,
``number``, ``text``, ``date``, ``enum`` (with ``choices``), ``list`` (comma-separated
text), ``options`` (the option editor), ``expression`` (the checked expression box),
``form`` (a form of the app), ``relation`` (a relation field of this form), ``field_of``
(a field of the form another property names) and ``json`` (anything else, as JSON text).
A new field type gets a panel from its schema without designer code.
"""

from __future__ import annotations

import re
from typing import Any

from engine_forms.fieldtypes import FIELD_TYPES
from frontend.i18n import _

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("basic", ("text", "textarea", "phone", "email", "id_card", "address")),
    ("choice", ("select", "multiselect", "boolean")),
    ("number", ("number", "money", "percent")),
    ("date", ("date", "datetime")),
    ("people", ("user", "department")),
    ("relation", ("relation", "subtable", "lookup", "rollup")),
    ("computed", ("formula", "auto_number")),
    ("files", ("attachment",)),
)


def group_names() -> dict[str, str]:
    return {"basic": _("基础"), "choice": _("选择"), "number": _("数字"),
            "date": _("日期"), "people": _("人员"), "relation": _("关联"),
            "computed": _("计算"), "files": _("文件")}


def type_names() -> dict[str, str]:
    return {"text": _("单行文本"), "textarea": _("多行文本"), "phone": _("电话"),
            "email": _("邮箱"), "id_card": _("身份证号"), "address": _("地址"),
            "select": _("单选"), "multiselect": _("多选"), "boolean": _("是/否"),
            "number": _("数字"), "money": _("金额"), "percent": _("百分比"),
            "date": _("日期"), "datetime": _("日期时间"), "user": _("人员"),
            "department": _("部门"), "relation": _("关联记录"), "subtable": _("子表"),
            "lookup": _("引用字段"), "rollup": _("汇总"), "formula": _("公式"),
            "auto_number": _("自动编号"), "attachment": _("附件")}


def config_names() -> dict[str, str]:
    return {"options": _("选项"), "max_length": _("最大长度"), "placeholder": _("占位提示"),
            "min": _("最小值"), "max": _("最大值"), "decimals": _("小数位"),
            "currency": _("币种"), "accept": _("允许的类型"), "level": _("精确到"),
            "target": _("关联到表单"), "multiple": _("可选多条"),
            "on_delete": _("被关联记录删除时"), "relation": _("经由关联字段"),
            "field": _("取哪个字段"), "source": _("来源表单"), "via": _("来源中的关联字段"),
            "aggregate": _("汇总方式"), "expression": _("公式"), "pattern": _("编号格式"),
            "fields": _("子表列（JSON）"), "max_rows": _("最多行数"),
            "max_files": _("最多文件数"), "max_size_mb": _("单个文件上限（MB）"),
            "default_current": _("默认为当前用户")}


def choice_names() -> dict[str, str]:
    return {"province": _("省"), "city": _("市"), "district": _("区县"),
            "detail": _("详细地址"), "mobile": _("手机"), "landline": _("座机"),
            "any": _("不限"), "restrict": _("禁止删除"), "set_blank": _("清空此字段"),
            "count": _("计数"), "sum": _("求和"), "min": _("最小"), "max": _("最大"),
            "avg": _("平均"), "CNY": _("人民币")}


def _kind(key: str, type_key: str, schema: dict[str, Any]) -> dict[str, Any]:
    if key == "options":
        return {"kind": "options"}
    if key == "expression":
        return {"kind": "expression"}
    if key in ("target", "source"):
        return {"kind": "form"}
    if key == "relation":
        return {"kind": "relation"}
    if key == "field" and type_key in ("lookup", "rollup"):
        return {"kind": "field_of", "of": "relation" if type_key == "lookup" else "source"}
    if key == "via":
        return {"kind": "field_of", "of": "source", "types": ["relation"]}
    if "enum" in schema:
        names = choice_names()
        return {"kind": "enum", "choices": [{"value": v, "label": names.get(v, v)}
                                            for v in schema["enum"]]}
    kind = schema.get("type")
    if kind == "boolean":
        return {"kind": "bool"}
    if kind in ("number", "integer"):
        return {"kind": "number", "step": 1 if kind == "integer" else "any"}
    if kind == "string":
        return {"kind": "date" if schema.get("format") == "date" else "text"}
    if kind == "array" and schema.get("items", {}).get("type") == "string":
        return {"kind": "list"}
    return {"kind": "json"}


def palette() -> dict[str, Any]:
    """The groups and, per field type, its name, group, whether the engine computes it
    and its properties, for the designer's script."""
    names, config, grouped = type_names(), config_names(), {}
    for group, keys in GROUPS:
        for key in keys:
            grouped[key] = group
    types = {}
    for key in FIELD_TYPES:
        ft = FIELD_TYPES.get(key)
        props = [{"key": k, "label": config.get(k, k), "required": k in ft.config_required,
                  **_kind(k, key, s)} for k, s in ft.config_schema.items()]
        types[key] = {"label": names.get(key, ft.label or key),
                      "group": grouped.get(key, "basic"), "computed": ft.computed,
                      "config": props}
    groups = [{"key": g, "label": group_names()[g],
               "types": [k for k in keys if k in types]} for g, keys in GROUPS]
    placed = {k for _g, keys in GROUPS for k in keys}
    extra = [k for k in types if k not in placed]  # a plug-in's types
    if extra:
        groups[0]["types"] += extra
    return {"groups": groups, "types": types}


def key_for(label: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A field key from a Chinese (or any) label, by pinyin: 房产估值 → fang_chan_gu_zhi;
    unique among ``taken``."""
    from pypinyin import lazy_pinyin  # its phrase tables take 0.7 s to load: when first needed

    words = [w.strip().lower() for w in lazy_pinyin(label)]
    text = re.sub(r"[^a-z0-9]+", "_", "_".join(w for w in words if w)).strip("_")
    if not text or not text[0].isalpha():
        text = f"f_{text}".rstrip("_")
    text = text[:40].rstrip("_")
    key, n = text, 2
    while key in taken:
        key, n = f"{text}_{n}", n + 1
    return key


def designer_strings() -> dict[str, str]:
    """The designer script's words, in the page's language ({name} are filled in)."""
    return {
        "add_option": _("添加选项"), "add_type": _("添加字段：{type}"),
        "add_validate": _("添加校验"), "at_column": _("第 {column} 列：{message}"),
        "at_version": _("已发布第 {version} 版"), "bad_json": _("不是有效的 JSON"),
        "changes": _("字段变化"), "checking": _("正在检查现有记录…"), "columns": _("列数"),
        "columns_n": _("{n} 列"), "create_form": _("创建表单"), "default_value": _("默认值"),
        "drop_here": _("把字段拖到这里"), "encrypt": _("加密存储"), "english_name": _("英文名称"),
        "existing_records": _("对现有记录的影响"), "failed": _("没有完成，请重试。"),
        "field_of_type": _("字段类型：{type}"), "fix_first": _("先改正上面列出的问题，再发布。"),
        "flag_problem": _("有问题"), "flag_required": _("必填"),
        "flag_required_if": _("条件必填"), "flag_visible_if": _("条件显示"),
        "for_example": _("例如"), "form_key": _("表单键"), "form_name": _("表单名称"),
        "formula_help": _("例如 amount * rate / 100；输入字段键或函数名会有提示。"),
        "help_text": _("帮助文字"), "impact_none": _("{n} 条现有记录，都不受影响。"),
        "impact_other": _("{n} 条记录受影响：{field}"), "indexed": _("建索引（常用于筛选）"),
        "item": _("项目"), "key": _("字段键"),
        "key_help": _("由名称自动生成；首次发布前可以修改。"),
        "key_locked": _("已发布的字段键不能修改。"), "label": _("名称"), "mask": _("脱敏显示"),
        "migrating": _("正在转换现有记录…"),
        "migration_progress": _("已转换 {done} / {total} 条，{failed} 条未能转换"),
        "move_down": _("下移"), "move_up": _("上移"),
        "moved": _("已移动“{field}”"), "name_field": _("名称"),
        "never_published": _("尚未发布"), "no": _("否"),
        "no_field_changes": _("字段没有变化（只改了名称、布局或规则）。"),
        "not_saved": _("未保存：请改正列出的问题。"), "option": _("选项"),
        "option_code_n": _("选项 {n} 的代码"), "option_n": _("选项 {n}"),
        "option_remove": _("删除选项 {n}"), "option_up": _("上移选项 {n}"),
        "options": _("选项"),
        "options_help": _("代码用于存储和接口，发布后不要随意改动；拖动 ⠿ 调整顺序。"),
        "pick_form_first": _("先选择关联"), "pick_something": _("选中一个字段或分区来编辑它。"),
        "problems": _("发布前需要改正："), "published": _("已发布第 {version} 版"),
        "remove_field": _("删除字段"), "remove_section": _("删除分区（字段移到相邻分区）"),
        "remove_validate": _("删除这条校验"), "required": _("必填"),
        "required_if": _("何时必填"),
        "required_if_help": _("条件成立时必须填写，例如 has_house = TRUE"),
        "rules": _("规则"), "saved": _("草稿已保存"), "saved_at": _("草稿已保存（{time}）"),
        "saving": _("正在保存…"), "section_default": _("基本信息"),
        "section_n": _("分区 {n}"), "section_other": _("其他"), "section_title": _("分区标题"),
        "title_field": _("标题字段"), "try_it": _("试算"),
        "try_record": _("记录编号（空：最新一条）"), "trying": _("计算中…"),
        "unique": _("不可重复"), "unsaved": _("有未保存的修改"), "validate": _("校验"),
        "validate_default": _("填写的内容不符合要求"),
        "validate_help": _("不成立时拒绝保存，例如 LEN(mobile) = 11"),
        "validate_message": _("不通过时的提示"), "validate_n": _("校验 {n}"),
        "visible_if": _("何时显示"),
        "visible_if_help": _("留空则总是显示，例如 has_house = TRUE"),
        "will_publish": _("将发布第 {version} 版。"),
        "would_fail": _("{total} 条记录中有 {n} 条无法自动转换，发布后它们保持旧版本，"
                        "需要逐条修改："),
        "yes": _("是"),
        "change_added": _("新增"), "change_removed": _("删除"), "change_renamed": _("改键"),
        "change_type_changed": _("改类型"), "change_options_changed": _("改选项"),
        "change_formula_changed": _("改公式"),
        "impact_added_required": _("{n} 条现有记录需要补填“{field}”（下次编辑时必填）"),
        "impact_removed": _("{n} 条记录的“{field}”有数据，发布后不再显示（历史中保留）"),
        "impact_renamed": _("{n} 条记录的数据移到“{field}”"),
        "impact_type_changed": _("{n} 条记录的“{field}”要转换类型"),
        "impact_options_removed": _("{n} 条记录的“{field}”选了被删除的选项 {options}"),
        "impact_formula_changed": _("{n} 条记录的“{field}”会重新计算"),
        **view_strings(),
    }


def view_strings() -> dict[str, str]:
    """The words of the designer's record-page tab (designer_view.js)."""
    return {
        "view_intro": _("记录页（360° 视图）在字段之外显示：头部的关键信息、数字卡片、关联列表"
                        "和快捷操作。什么都不选时，记录页只列出字段。"),
        "view_head": _("头部"), "view_head_fields": _("关键字段（最多 8 个，按顺序）"),
        "view_status": _("状态（单选字段）"), "view_tags": _("标签（多选字段）"),
        "view_cards": _("数字卡片"), "view_cards_pick": _("卡片（最多 8 个）"),
        "view_cards_help": _("可选汇总、公式、数字、金额、百分比、日期和自动编号字段；"
                             "卡片名称留空时用字段名称。"),
        "view_card_label": _("卡片名称"), "view_card_label_of": _("“{name}”的卡片名称"),
        "view_related": _("关联列表"),
        "view_related_none": _("本应用还没有已发布的表单通过关联字段指向这个表单。"),
        "view_related_item": _("{form}（经由“{via}”）"),
        "view_related_missing": _("{form}.{via}：表单未发布或不再指向这个表单"),
        "view_remove_item": _("移除"), "view_related_label": _("列表名称"),
        "view_columns": _("列（最多 8 个）"), "view_sort": _("排序"),
        "view_direction": _("排序方向"), "view_desc": _("降序"),
        "view_asc": _("升序"), "view_created": _("创建时间"), "view_updated": _("更新时间"),
        "view_limit": _("显示条数（1–50）"), "view_new": _("显示“新建”按钮（预先关联本记录）"),
        "view_actions": _("快捷操作"), "view_create": _("新建{form}（经由“{via}”）"),
        "view_flow": _("并启动流程"), "view_no_flow": _("不启动流程"),
        "view_upload": _("上传到“{field}”"), "view_message": _("发送消息"),
        "view_message_rules": _("提供哪些手动规则（都不选：全部）"),
        "view_no_rules": _("这个表单还没有手动规则（触发方式为“手动”的规则）；"
                           "按钮会打开一个空的发送页。"),
        "view_action_label": _("按钮文字"), "view_add": _("添加"),
        "view_add_to": _("添加到“{what}”"), "view_pick": _("选择…"),
        "view_full": _("最多 {n} 个。"), "view_up": _("上移“{name}”"),
        "view_down": _("下移“{name}”"), "view_remove": _("移除“{name}”"),
        "view_problems": _("记录页的设置有问题："),
    }
