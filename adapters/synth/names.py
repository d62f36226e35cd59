"""Synthetic Chinese personal names with realistic surname frequencies, and their variants.

Surname weights follow published frequency rankings for Guangdong (陈, 黄, 李, 梁, 张 ...);
Yao and Zhuang surnames (盘, 房, 韦, 覃 ...) are boosted in 连山 and 连南. Given names are one
or two characters. Names are drawn at random: any likeness to a real person is chance.

May import: the standard library only.
"""

from __future__ import annotations

import random

_SURNAMES: tuple[tuple[str, float], ...] = (
    ("陈", 10.0), ("李", 7.5), ("黄", 7.0), ("张", 5.0), ("梁", 4.0), ("林", 4.0), ("刘", 4.0),
    ("吴", 3.0), ("罗", 3.0), ("何", 3.0), ("王", 3.0), ("郑", 2.5), ("杨", 2.5), ("邓", 2.5),
    ("周", 2.0), ("朱", 2.0), ("谢", 2.0), ("曾", 2.0), ("冯", 1.5), ("叶", 1.5), ("钟", 1.5),
    ("许", 1.2), ("苏", 1.2), ("蔡", 1.2), ("廖", 1.2), ("赖", 1.0), ("温", 1.0), ("彭", 1.0),
    ("潘", 1.0), ("邱", 1.0), ("卢", 1.0), ("赵", 1.0), ("莫", 0.8), ("唐", 0.8), ("徐", 0.8),
    ("胡", 0.8), ("郭", 0.8), ("黎", 0.8), ("余", 0.8), ("高", 0.6), ("邹", 0.6), ("江", 0.6),
    ("孙", 0.5), ("马", 0.5), ("沈", 0.5), ("严", 0.5), ("范", 0.5), ("袁", 0.5), ("杜", 0.4),
    ("汤", 0.4), ("覃", 0.4), ("韦", 0.4), ("盘", 0.3), ("房", 0.3), ("龚", 0.3), ("侯", 0.3),
    ("邝", 0.3), ("骆", 0.3), ("欧阳", 0.3), ("官", 0.2), ("司徒", 0.1),
)
_ETHNIC_BOOST = {"盘": 12.0, "房": 10.0, "韦": 6.0, "覃": 5.0, "唐": 3.0, "沈": 3.0, "邓": 2.0, "莫": 3.0}
_ETHNIC_COUNTIES = frozenset({"441825", "441826"})

_MALE = "伟强磊军勇杰涛明斌超辉刚鹏俊峰波平华建国志文东海林锋宇浩嘉子轩晨博健永家荣德兴"
_FEMALE = "芳娟敏静丽艳秀霞燕玲婷兰梅红萍琳洁雪慧颖欣怡佳雅晶倩丹凤英月桂春美淑玉莹"

HOMOPHONES: dict[str, str] = {
    "丽": "莉", "莉": "丽", "明": "铭", "伟": "玮", "华": "桦", "静": "婧", "军": "君", "芳": "方",
    "红": "宏", "玲": "琳", "琳": "玲", "敏": "民", "杰": "洁", "洁": "杰", "涛": "韬", "勇": "永",
    "永": "勇", "辉": "晖", "燕": "艳", "艳": "燕", "霞": "侠", "平": "萍", "萍": "平", "英": "瑛",
    "斌": "彬", "峰": "锋", "锋": "峰", "俊": "骏", "婷": "亭", "秀": "绣", "兰": "岚", "梅": "玫",
    "刚": "钢", "波": "博", "博": "波", "鹏": "朋", "磊": "蕾", "超": "潮", "东": "冬", "海": "凯",
    "林": "霖", "宇": "雨", "浩": "皓", "嘉": "家", "家": "嘉", "晨": "辰", "健": "建", "建": "健",
    "荣": "蓉", "德": "得", "兴": "星", "国": "帼", "志": "智", "文": "雯", "雪": "雯", "慧": "惠",
    "颖": "莹", "莹": "颖", "欣": "馨", "怡": "仪", "佳": "嘉", "雅": "亚", "晶": "菁", "倩": "茜",
    "丹": "单", "凤": "风", "月": "悦", "桂": "贵", "春": "纯", "美": "媚", "淑": "书", "玉": "钰",
    "娟": "鹃", "强": "墙", "子": "紫", "轩": "萱",
}
"""Given-name characters and a same-sounding character a clerk may type instead."""

SURNAME_HOMOPHONES: dict[str, str] = {"黄": "王", "王": "黄", "张": "章", "章": "张", "程": "陈", "钟": "锺"}
"""Surnames confused across facilities (黄/王 are homophones in Cantonese-accented speech)."""


def pick_surname(rng: random.Random, county_code: str) -> str:
    """A surname drawn by frequency; Yao/Zhuang surnames are more common in 连山/连南."""
    names = [s for s, _ in _SURNAMES]
    boost = _ETHNIC_BOOST if county_code in _ETHNIC_COUNTIES else {}
    weights = [w * boost.get(s, 1.0) for s, w in _SURNAMES]
    return rng.choices(names, weights=weights)[0]


def pick_given(rng: random.Random, sex: str) -> str:
    """A one- or two-character given name (sex `M` or `F`; 30 % one character)."""
    pool = _MALE if sex == "M" else _FEMALE
    if rng.random() < 0.3:
        return rng.choice(pool)
    return rng.choice(pool) + rng.choice(pool + _MALE[:10])


def name_variant(rng: random.Random, family: str, given: str) -> tuple[str, str, str]:
    """A misrecorded form of a name as another facility may hold it.

    Returns (family, given, kind) where kind is `homophone` (a given-name character swapped
    for a same-sounding one), `surname_homophone` (黄/王 ...), or `typo` (the two given-name
    characters transposed); falls back to `homophone` forms when a kind does not apply.
    """
    roll = rng.random()
    if roll < 0.2 and family in SURNAME_HOMOPHONES:
        return SURNAME_HOMOPHONES[family], given, "surname_homophone"
    if roll < 0.4 and len(given) == 2 and given[0] != given[1]:
        return family, given[1] + given[0], "typo"
    chars = list(given)
    for i in rng.sample(range(len(chars)), len(chars)):
        if chars[i] in HOMOPHONES:
            chars[i] = HOMOPHONES[chars[i]]
            return family, "".join(chars), "homophone"
    return family, given + rng.choice(_FEMALE if given[-1] in _FEMALE else _MALE), "typo"


def pick_phone(rng: random.Random) -> str:
    """A mobile number in the reserved test range 13800000000-13800009999."""
    return f"1380000{rng.randrange(10000):04d}"
