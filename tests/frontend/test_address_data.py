"""The address cascader's data (``frontend.workspace_address``): no browser, no database."""

from __future__ import annotations

import json

from frontend import workspace_address as address

MUNICIPALITIES = ("北京市", "天津市", "上海市", "重庆市")


def test_all_provincial_level_divisions_are_there():
    names = address.provinces()
    assert len(names) == 34 == len(set(names))
    assert names[0] == "北京市" and names[30] == "新疆维吾尔自治区"
    assert set(names[31:]) == {"香港特别行政区", "澳门特别行政区", "台湾省"}


def test_a_municipality_is_its_own_city():
    for name in MUNICIPALITIES:
        assert address.cities(name) == [name]
    assert "东城区" in address.districts("北京市", "北京市")
    assert "城口县" in address.districts("重庆市", "重庆市")  # a county, not only districts


def test_province_city_district():
    assert "深圳市" in address.cities("广东省")
    assert "南山区" in address.districts("广东省", "深圳市")
    assert "仙桃市" in address.districts("湖北省", "省直辖县级行政区划")


def test_every_city_has_districts_and_no_name_repeats():
    for province in address.provinces():
        cities = address.cities(province)
        assert cities and len(cities) == len(set(cities)), province
        for city in cities:
            districts = address.districts(province, city)
            assert districts and len(districts) == len(set(districts)), (province, city)


def test_unknown_names_give_nothing():
    assert address.cities("火星省") == []
    assert address.districts("火星省", "北京市") == []
    assert address.districts("广东省", "北京市") == []
    assert address.districts("北京市", "") == []


def test_callers_cannot_change_the_shared_data():
    address.cities("广东省").clear()
    address.districts("广东省", "深圳市").clear()
    assert "南山区" in address.districts("广东省", "深圳市")


def test_the_file_is_the_documented_shape():
    data = json.loads(address.DIVISIONS.read_text(encoding="utf-8"))
    assert all(isinstance(d, str) for cities in data.values()
               for districts in cities.values() for d in districts)
