"""Writes the CRM template's demo data (``bank_intermediary_crm/demo/*.json``).

The demo data is plain JSON in the bundle, like everything else in a template; this
script only made it, deterministically (a fixed seed), so it can be made again after the
forms change: ``python -m templates_catalog.make_crm_demo``.

Dates are as of ``AS_OF``; installing shifts every date by the days since then, so a demo
installed later still shows the last six months.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

AS_OF = date(2026, 11, 30)
OUT = Path(__file__).resolve().parent / "bank_intermediary_crm" / "demo"
CHINA = "+08:00"

DEPARTMENTS = [
    {"key": "hq", "name": "总部", "manager": "liu.yang"},
    {"key": "bj", "name": "北京分公司", "parent": "hq", "manager": "wang.fang"},
    {"key": "bj1", "name": "北京销售一部", "parent": "bj", "manager": "wang.fang"},
    {"key": "bj2", "name": "北京销售二部", "parent": "bj", "manager": "zhao.lei"},
    {"key": "sh", "name": "上海分公司", "parent": "hq", "manager": "zhou.qiang"},
    {"key": "sh1", "name": "上海销售部", "parent": "sh", "manager": "zhou.qiang"},
    {"key": "risk", "name": "风控部", "parent": "hq"},
    {"key": "ops", "name": "运营部", "parent": "hq"},
]
# username, name, department, roles
PEOPLE = [
    ("liu.yang", "刘洋", "hq", ["team_lead"]),
    ("wang.fang", "王芳", "bj1", ["team_lead"]),
    ("zhao.lei", "赵磊", "bj2", ["team_lead"]),
    ("zhou.qiang", "周强", "sh1", ["team_lead"]),
    ("zhang.wei", "张伟", "bj1", ["sales"]),
    ("li.na", "李娜", "bj1", ["sales"]),
    ("chen.jie", "陈杰", "bj1", ["sales"]),
    ("yang.min", "杨敏", "bj2", ["sales"]),
    ("huang.tao", "黄涛", "bj2", ["sales"]),
    ("wu.hao", "吴昊", "sh1", ["sales"]),
    ("xu.li", "徐丽", "sh1", ["sales"]),
    ("sun.peng", "孙鹏", "sh1", ["sales"]),
    ("ma.jun", "马骏", "risk", ["risk"]),
    ("hu.jing", "胡静", "risk", ["risk"]),
    ("guo.xin", "郭欣", "ops", ["clerk"]),
    ("he.yan", "何燕", "ops", ["clerk"]),
]
SALES = [p[0] for p in PEOPLE if p[3] == ["sales"]]
CITY_OF = {"bj1": ("北京", "110105"), "bj2": ("北京", "110108"), "sh1": ("上海", "310115")}
DEPT_OF = {p[0]: p[2] for p in PEOPLE}

PRODUCTS = [
    ("工行融e借", "icbc", "credit", 3.45, 8.0, "300000.00", 60, 1.0),
    ("工行经营快贷", "icbc", "business", 3.2, 5.5, "3000000.00", 36, 1.2),
    ("建行快贷", "ccb", "credit", 3.6, 9.0, "200000.00", 36, 1.0),
    ("建行抵押快贷", "ccb", "mortgage", 3.1, 4.8, "10000000.00", 240, 0.8),
    ("农行网捷贷", "abc", "credit", 3.7, 8.5, "200000.00", 36, 1.0),
    ("农行房抵e贷", "abc", "mortgage", 3.2, 4.9, "8000000.00", 240, 0.8),
    ("中行随心智贷", "boc", "credit", 3.5, 7.5, "300000.00", 60, 1.0),
    ("招行闪电贷", "cmb", "credit", 3.3, 10.0, "300000.00", 36, 1.5),
    ("招行生意贷", "cmb", "business", 3.8, 6.5, "5000000.00", 60, 1.5),
    ("平安新一贷", "pab", "credit", 6.0, 18.0, "500000.00", 60, 3.0),
    ("平安车主贷", "pab", "car", 5.5, 12.0, "500000.00", 48, 2.5),
    ("中信信秒贷", "citic", "credit", 4.0, 12.0, "300000.00", 36, 2.0),
]
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯"
            "邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢")
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲兰凤洁梅琳素云莲真环雪荣爱妹"
# how far a loan case got (its last act) and how often
ENDINGS = [("lost_analysis", 6), ("lost_matching", 6), ("lost_signing", 8), ("at_analysis", 5),
           ("at_matching", 5), ("at_signing", 6), ("at_materials", 5), ("at_risk", 5),
           ("at_bank", 6), ("rejected", 6), ("at_disburse", 4), ("at_care", 8), ("done", 30)]
WEIGHTS = {"mortgage": 3, "credit": 5, "business": 3, "car": 1}
AMOUNTS = {"mortgage": (500_000, 5_000_000), "credit": (50_000, 500_000),
           "business": (300_000, 3_000_000), "car": (50_000, 400_000)}


def _id_no(rng: random.Random, region: str, birth: date, female: bool) -> str:
    seq = rng.randrange(0, 50) * 2 + (0 if female else 1)
    body = f"{region}{birth:%Y%m%d}{rng.randrange(10):01d}{seq:02d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


def _stamp(day: date, rng: random.Random) -> str:
    moment = datetime.combine(day, time(rng.randrange(9, 19), rng.randrange(60)))
    return moment.isoformat() + CHINA


def _money(low: int, high: int, rng: random.Random, step: int = 10_000) -> str:
    return f"{rng.randrange(low // step, high // step + 1) * step}.00"


def customers(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out, mobiles = [], set()
    for i in range(n):
        owner = SALES[i % len(SALES)]
        city, region = CITY_OF[DEPT_OF[owner]]
        female = rng.random() < 0.45
        birth = date(rng.randrange(1965, 2001), rng.randrange(1, 13), rng.randrange(1, 29))
        while (mobile := f"1{rng.choice('3589')}{rng.randrange(10**9):09d}") in mobiles:
            pass
        mobiles.add(mobile)
        created = AS_OF - timedelta(days=rng.randrange(5, 200))
        data = {
            "name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN)
                                                   for _ in range(rng.choice((1, 2)))),
            "mobile": mobile, "id_no": _id_no(rng, region, birth, female),
            "gender": "female" if female else "male", "city": city,
            "source": rng.choices(["web", "referral", "phone", "partner", "walk_in"],
                                  [4, 3, 2, 3, 1])[0],
            "status": "new",
            "level": rng.choices("abcd", [2, 4, 3, 1])[0],
            "occupation": rng.choice(["employee", "self_employed", "owner", "freelance"]),
            "monthly_income": _money(8_000, 80_000, rng, 1_000),
            "has_house": rng.random() < 0.55, "has_car": rng.random() < 0.5,
        }
        if rng.random() < 0.3:
            data["tags"] = rng.sample(["high_value", "repeat", "urgent", "vip"],
                                      rng.randrange(1, 3))
        out.append({"ref": f"c{i + 1:03d}", "owner": owner, "created": _stamp(created, rng),
                    "data": data})
    return out


def _flow(rng: random.Random, ending: str, start: date, kind: str, amount: int,
          product: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The acts that take a case to ``ending``: each the outcome of the open task, the
    data it writes, and the day."""
    acts: list[dict[str, Any]] = []
    day = start

    def act(outcome: str, gap: tuple[int, int], **data: Any) -> None:
        nonlocal day
        day += timedelta(days=rng.randrange(*gap))
        acts.append({"outcome": outcome, "day": day.isoformat(), **({"data": data} if data
                                                                    else {})})

    stages = ["analysis", "matching", "signing", "materials", "risk", "bank", "disburse",
              "care"]
    if ending.startswith("lost_"):
        upto = stages.index(ending[5:])
    elif ending.startswith("at_"):
        upto = stages.index(ending[3:])
    elif ending == "rejected":
        upto = stages.index("bank")
    else:
        upto = len(stages)
    reasons = ["利率太高", "客户资质不符", "客户选择其他机构", "资金需求取消", "联系不上"]
    for stage in stages[:upto]:
        if stage == "analysis":
            act("submit", (0, 3), term_months=rng.choice([12, 24, 36, 60, 120]))
        elif stage == "matching":
            fee = rng.choice([1.0, 1.5, 2.0, 2.5])
            act("submit", (1, 4), product=product, rate=round(rng.uniform(3.2, 8.0), 2),
                fee_rate=fee)
        elif stage == "signing":
            act("submit", (1, 6))
            acts[-1]["data"] = {"signed_date": acts[-1]["day"]}
        elif stage == "materials":
            act("submit", (1, 5), materials=[
                {"item": "身份证", "received": True}, {"item": "收入证明", "received": True},
                {"item": "银行流水", "received": True}])
        elif stage == "risk":
            act("approve", (1, 3))
        elif stage == "bank":
            approved = f"{amount * rng.choice([0.8, 0.9, 1.0, 1.0]) // 10_000 * 10_000:.2f}"
            act("submit", (3, 12), approval_result="approved", approved_amount=approved)
        elif stage == "disburse":
            act("submit", (2, 6))
            paid = date.fromisoformat(acts[-1]["day"])
            months = 12 if kind in ("credit", "car") else 36
            acts[-1]["data"] = {"disbursed_date": paid.isoformat(),
                                "maturity_date": (paid + timedelta(days=30 * months))
                                .isoformat()}
        elif stage == "care":
            act("submit", (8, 12), note="贷后回访: 客户满意, 按时还款")
    if ending.startswith("lost_"):
        act("lost", (1, 5), lost_reason=rng.choice(reasons))
    elif ending == "rejected":
        act("submit", (3, 12), approval_result="rejected")
    extra = {"apply_date": start.isoformat()}
    return acts, extra


def loan_cases(rng: random.Random, people: list[dict[str, Any]], products: list[dict[str, Any]],
               n: int) -> list[dict[str, Any]]:
    out = []
    endings = [e for e, w in ENDINGS for _ in range(w)]
    for i in range(n):
        customer = people[i % len(people)] if i < len(people) else rng.choice(people)
        kind = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        candidates = [p for p in products if p["data"]["loan_type"] == kind]
        product = rng.choice(candidates)
        low, high = AMOUNTS[kind]
        amount = rng.randrange(low // 10_000, high // 10_000 + 1) * 10_000
        created_day = min(AS_OF, date.fromisoformat(customer["created"][:10])
                          + timedelta(days=rng.randrange(0, 10)))
        ending = rng.choice(endings)
        if created_day > AS_OF - timedelta(days=10) and ending in ("done", "at_care"):
            ending = "at_signing"  # a young case is not that far along yet
        acts, extra = _flow(rng, ending, created_day, kind, amount, "@" + product["ref"])
        while acts and date.fromisoformat(acts[-1]["day"]) > AS_OF:
            acts.pop()  # not yet: stays open at that step
        data = {"customer": "@" + customer["ref"], "loan_type": kind,
                "amount": f"{amount}.00", **extra}
        if kind == "mortgage":
            data["has_collateral"] = True
            data["collateral_value"] = f"{amount * 2}.00"
        out.append({"ref": f"l{i + 1:03d}", "owner": customer["owner"],
                    "created": _stamp(created_day, rng), "data": data,
                    "flow": {"key": "loan_service", "acts": acts}})
    return out


def follow_ups(rng: random.Random, people: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    summaries = ["了解贷款需求", "介绍产品方案", "催收资料", "告知审批进度", "约面谈签约",
                 "节日问候", "复贷意向沟通", "解答利率问题"]
    for i in range(n):
        customer = rng.choice(people)
        first = date.fromisoformat(customer["created"][:10])
        day = min(AS_OF, first + timedelta(days=rng.randrange(0, 120)))
        data = {"customer": "@" + customer["ref"],
                "method": rng.choices(["phone", "wechat", "visit", "sms"], [5, 6, 2, 1])[0],
                "summary": rng.choice(summaries), "follow_date": day.isoformat()}
        if rng.random() < 0.3:
            data["next_date"] = (day + timedelta(days=rng.randrange(3, 30))).isoformat()
        out.append({"ref": f"f{i + 1:03d}", "owner": customer["owner"],
                    "created": _stamp(day, rng), "data": data})
    return out


def main() -> None:
    rng = random.Random(2026)
    products = [{"ref": f"p{i + 1:02d}", "owner": "guo.xin", "created": "2026-05-01T10:00:00"
                 + CHINA, "data": {"name": name, "bank": bank, "loan_type": kind,
                                   "rate_min": lo, "rate_max": hi, "max_amount": top,
                                   "max_term_months": term, "commission_rate": fee,
                                   "active": True}}
                for i, (name, bank, kind, lo, hi, top, term, fee) in enumerate(PRODUCTS)]
    people = customers(rng, 100)
    directory = {"as_of": AS_OF.isoformat(), "password_hint": "all demo users share one "
                 "password, printed when the demo is installed",
                 "departments": DEPARTMENTS,
                 "users": [{"username": u, "display_name": n, "department": d, "roles": r,
                            "mobile": f"1390000{i:04d}", "email": f"{u}@demo.qiao.example"}
                           for i, (u, n, d, r) in enumerate(PEOPLE, start=1)]}
    records = {"bank_product": products, "customer": people,
               "loan_case": loan_cases(rng, people, products, 120),
               "follow_up": follow_ups(rng, people, 240)}
    OUT.mkdir(parents=True, exist_ok=True)
    for name, doc in (("directory", directory), ("records", records)):
        text = json.dumps(doc, ensure_ascii=False, indent=1)
        (OUT / f"{name}.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
