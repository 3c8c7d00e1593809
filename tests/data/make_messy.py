"""Messy spreadsheets like a brokerage's years of Excel, for the import tests (issue 21).

Nothing binary is committed: the tests call these functions into a temporary folder, and
``python tests/data/make_messy.py OUTDIR [ROWS]`` writes every sample (and a ROWS-row
file, 200,000 by default) to look at by hand.

- ``customers_xlsx``: a merged title "2023年客户台账", a note line, a two-row header
  ("联系方式" over "手机"/"微信"), phones with +86 and spaces, ID numbers good, lower-case
  and bad (check digit, birth date, digits Excel stored as a number), incomes in 万/元/¥
  with commas, a gender column with synonyms (先生, F, 男性) and an unknown value (未知),
  the same customer twice, a blank row;
- ``loans_xlsx``: application dates typed five ways (a real date cell, 2024/3/5,
  2024.3.5, 2024年3月5日, 20240305, an Excel serial number) and one impossible date,
  amounts in 万, rates as "4.35%", customers by mobile;
- ``customers_csv``: the same customers as a CSV in GBK (gb18030) or UTF-8 with a BOM;
- ``big_xlsx`` / ``big_csv``: N clean customer rows of 20 columns (xlsxwriter
  ``constant_memory``), for streaming and speed.
"""

from __future__ import annotations

import csv
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def id_number(seq: int, born: date = date(1985, 6, 15), area: str = "110105") -> str:
    """A valid 18-digit ID number (GB 11643 check character) for sequence ``seq``."""
    first = f"{area}{born:%Y%m%d}{seq % 1000:03d}"
    return first + CHECK[sum(int(c) * w for c, w in zip(first, WEIGHTS, strict=True)) % 11]


GOOD_ID = id_number(1)
X_ID = "11010519491231002X"

# the customer sheet: (file row, cells) — rows 1–5 are the title, note and header
TITLE = "2023年客户台账"
CUSTOMER_TOP = ["序号", "客户姓名", "联系方式", None, "身份证号码", "性别", "月收入",
                "来源", "备注（选填）"]
CUSTOMER_BOTTOM = [None, None, "手机", "微信", None, None, None, None, None]
CUSTOMER_ROWS: list[list[Any]] = [
    [1, "张三", "+86 138 0000 1234", "zhang3", X_ID.lower(), "先生", "1.5万", "官网", ""],
    [2, "李四", "139-0000-5678", "", GOOD_ID, "F", "¥8,000", "转介绍", "老客户"],
    [3, "王五", "13700001111", "ww", "110105194912310021", "男性", "12000元", "官网",
     "校验位错"],
    [4, "赵六", "0086 136 0000 2222", "", 110105198506150018.0, "女", 9000, "抖音",
     "Excel 把身份证存成了数字"],
    [5, "张三", "+86 138 0000 1234", "zhang3", X_ID.lower(), "先生", "1.5万", "官网", ""],
    [None, None, None, None, None, None, None, None, None],  # a blank row
    [6, "孙七", "1350000", "", "110105198513450011", "未知", "abc", "", "手机位数不够"],
]
# file row of each data row (title on 2, note on 3, header on 4–5, data from 6)
CUSTOMER_FIRST_ROW = 6
CUSTOMER_GENDER_MAP = {"先生": "male", "F": "female", "男性": "male", "女": "female"}


def customers_xlsx(path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet("说明").write(0, 0, "这个工作簿的第二页是客户台账")
    sheet = book.add_worksheet("客户")
    sheet.merge_range(1, 0, 1, len(CUSTOMER_TOP) - 1, TITLE)
    sheet.write(2, 0, "单位: 元; 导出自旧系统")
    sheet.write_row(3, 0, CUSTOMER_TOP)
    sheet.merge_range(3, 2, 3, 3, "联系方式")
    for col, (top, bottom) in enumerate(zip(CUSTOMER_TOP, CUSTOMER_BOTTOM, strict=True)):
        if bottom is None and top is not None:
            sheet.merge_range(3, col, 4, col, top)
    sheet.write_row(4, 2, CUSTOMER_BOTTOM[2:4])
    for i, row in enumerate(CUSTOMER_ROWS):
        for col, cell in enumerate(row):
            if cell is not None:
                sheet.write(CUSTOMER_FIRST_ROW - 1 + i, col, cell)
    book.close()
    return path


LOAN_HEADER = ["客户手机", "贷款类型", "申请金额", "申请日期", "年利率", "期限(月)"]
LOAN_ROWS: list[list[Any]] = [
    ["13800001234", "房屋抵押贷", "100万", datetime(2024, 3, 5), "4.35%", 36],
    ["13800001234", "信用贷", "5万", "2024/3/5", "12%", 12],
    ["13800001234", "经营贷", "50万元", "2024.3.5", 6.5, 24],
    ["13800001234", "车抵贷", "20,0000", "2024年3月5日", "8%", 24],
    ["13800001234", "信用贷", "3.5万", "20240305", "9.9%", 12],
    ["13800001234", "信用贷", "1万", 45356, "10%", 12],
    ["13800001234", "信用贷", "1万", "2024-02-30", "10%", 12],
    ["13900009999", "信用贷", "1万", "2024-03-05", "10%", 12],
]
LOAN_DAY = "2024-03-05"


def loans_xlsx(path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("贷款")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, LOAN_HEADER)
    for i, row in enumerate(LOAN_ROWS, start=1):
        for col, cell in enumerate(row):
            if isinstance(cell, datetime):
                sheet.write_datetime(i, col, cell, day)
            else:
                sheet.write(i, col, cell)
    book.close()
    return path


def customers_csv(path: Path, encoding: str = "gb18030") -> Path:
    """The customer rows as a plain CSV (one header row, no title) in ``encoding``."""
    header = ["客户姓名", "手机", "身份证号码", "性别", "月收入", "来源"]
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in CUSTOMER_ROWS:
            if row[0] is None:
                writer.writerow([])
                continue
            idn = row[4]
            writer.writerow([row[1], row[2], f"{idn:.0f}" if isinstance(idn, float) else idn,
                             row[5], row[6], row[7]])
    return path


BIG_HEADER = ["姓名", "手机", "身份证号", "性别", "城市", "来源渠道", "客户状态", "客户等级",
              "职业", "月收入", "有房产", "有车", "微信号", "标签", "备注", "登记日期",
              "推荐人", "地址", "邮箱", "序号"]
CITIES = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "西安")


def big_row(i: int) -> list[Any]:
    """Row ``i`` of the big file: unique mobile and ID number, plausible everything."""
    # (birth date, sequence) is unique for the first 720,000 rows
    born = date(1950 + (i // 1000) % 60, 1 + (i // 60_000) % 12, 1)
    return [f"客户{i}", f"13{i % 10}{i:08d}"[:11], id_number(i, born, f"1101{i % 90 + 10:02d}"),
            "男" if i % 2 else "女", CITIES[i % len(CITIES)], ("官网/小程序", "老客户转介绍",
                                                            "电话营销")[i % 3],
            "跟进中", "B 良好", "上班族", f"{5000 + i % 20000}", "是" if i % 3 else "否",
            "否", f"wx{i}", "VIP" if i % 7 == 0 else "", f"备注{i % 100}",
            date(2020 + i % 4, 1 + i % 12, 1 + i % 28), f"推荐人{i % 50}",
            f"北京市 北京市 海淀区 中关村大街 {i % 300} 号", f"c{i}@example.com", i]


def big_xlsx(path: Path, n: int) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("客户")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, BIG_HEADER)
    for i in range(1, n + 1):
        for col, cell in enumerate(big_row(i)):
            if isinstance(cell, date):
                sheet.write_datetime(i, col, cell, day)
            elif isinstance(cell, int):
                sheet.write_number(i, col, cell)
            else:
                sheet.write_string(i, col, cell)
    book.close()
    return path


def big_csv(path: Path, n: int, encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(BIG_HEADER)
        for i in range(1, n + 1):
            writer.writerow(big_row(i))
    return path


def write_all(outdir: Path, rows: int = 200_000) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    return [customers_xlsx(outdir / "customers_messy.xlsx"),
            loans_xlsx(outdir / "loans_dates.xlsx"),
            customers_csv(outdir / "customers_gbk.csv", "gb18030"),
            customers_csv(outdir / "customers_bom.csv", "utf-8-sig"),
            big_xlsx(outdir / f"customers_{rows}.xlsx", rows),
            big_csv(outdir / f"customers_{rows}.csv", rows)]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/data/make_messy.py OUTDIR [ROWS]")
    for written in write_all(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2
                             else 200_000):
        sys.stdout.write(f"{written}\n")
