"""Reference geography for the synthetic feed: Qingyuan's eight county-level units.

County codes are GB/T 2260 administrative division codes; town names are those of the
real towns and sub-districts, village names are composed (no real addresses).

May import: the standard library only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PROVINCE = "广东省"


@dataclass(frozen=True, slots=True)
class County:
    """A county-level unit: GB/T 2260 `code`, Chinese `name`, its towns (乡镇/街道)."""

    code: str
    name: str
    towns: tuple[str, ...]
    weight: float
    """Share of the synthetic population living here (roughly the 2020 census shares)."""


COUNTIES: tuple[County, ...] = (
    County("441802", "清城区", ("凤城街道", "东城街道", "洲心街道", "横荷街道", "源潭镇", "龙塘镇", "石角镇",
                               "飞来峡镇"), 1.6),
    County("441803", "清新区", ("太和镇", "山塘镇", "三坑镇", "龙颈镇", "禾云镇", "浸潭镇", "石潭镇",
                               "太平镇"), 1.0),
    County("441821", "佛冈县", ("石角镇", "汤塘镇", "龙山镇", "水头镇", "迳头镇", "高岗镇"), 0.4),
    County("441823", "阳山县", ("阳城镇", "七拱镇", "太平镇", "杜步镇", "小江镇", "黎埠镇", "青莲镇",
                               "岭背镇"), 0.5),
    County("441825", "连山壮族瑶族自治县", ("吉田镇", "太保镇", "禾洞镇", "福堂镇", "小三江镇", "上帅镇",
                                          "永和镇"), 0.1),
    County("441826", "连南瑶族自治县", ("三江镇", "寨岗镇", "大麦山镇", "香坪镇", "大坪镇", "涡水镇",
                                      "三排镇"), 0.15),
    County("441881", "英德市", ("英城街道", "连江口镇", "青塘镇", "大站镇", "望埠镇", "横石塘镇", "西牛镇",
                               "浛洸镇", "东华镇", "九龙镇"), 1.0),
    County("441882", "连州市", ("连州镇", "西岸镇", "保安镇", "星子镇", "东陂镇", "丰阳镇", "九陂镇",
                               "龙坪镇"), 0.45),
)

COUNTY_BY_CODE: dict[str, County] = {c.code: c for c in COUNTIES}
_COUNTY_WEIGHTS = [c.weight for c in COUNTIES]

_VILLAGE_FIRST = "东西南北上下新大小石黄岭龙沙白"
_VILLAGE_SECOND = ("围", "坑", "塘", "岭", "山", "田", "坪", "洞", "寨", "冲", "湾", "头")


def pick_county(rng: random.Random) -> County:
    """A county drawn by population weight."""
    return rng.choices(COUNTIES, weights=_COUNTY_WEIGHTS)[0]


def pick_village(rng: random.Random) -> str:
    """A composed village name such as `东围村` (not a real address)."""
    return rng.choice(_VILLAGE_FIRST) + rng.choice(_VILLAGE_SECOND) + "村"
