"""Chart fonts: the surveillance epidemic curve and the workbench charts use Noto Sans CJK when it
is installed (even when matplotlib's font cache predates it), so legends are Chinese, not pinyin;
without any CJK font they fall back with one logged warning.
"""

from __future__ import annotations

import glob
import logging
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hie_server.surveillance import chart_font
from hie_server.surveillance.cases import CaseRecord
from hie_server.surveillance.stats import epidemic_curve
from hie_server.web import charts

NOTO = glob.glob("/usr/share/fonts/**/NotoSansCJK*.tt[cf]", recursive=True)


@pytest.fixture
def fresh_lookup() -> Iterator[None]:
    chart_font.cjk_family.cache_clear()
    yield
    chart_font.cjk_family.cache_clear()


def _case(i: int, code: str, name: str) -> CaseRecord:
    when = datetime(2026, 9, 1, 8, tzinfo=UTC) + timedelta(days=3 * i)
    return CaseRecord(
        case_id=f"c{i}",
        disease_code=code,
        disease_name=name,
        disease_class="乙类",
        classification="confirmed",
        diagnosis_time=when,
        onset_date=when.date(),
        reported_at=when,
        deadline=when + timedelta(hours=24),
        facility="F1",
        facility_name=None,
        patient_id=f"p{i}",
        county="清城区",
    )


def _require_noto() -> None:
    if not NOTO:
        if os.environ.get("CI") == "true":
            pytest.fail("fonts-noto-cjk missing (installed by .ci/chromium.sh)")
        pytest.skip("fonts-noto-cjk not installed")


@pytest.mark.usefixtures("fresh_lookup")
def test_epidemic_curve_has_chinese_legend_with_noto() -> None:
    _require_noto()
    assert chart_font.cjk_family() == "Noto Sans CJK SC"
    cases = [_case(i, "A09", "感染性腹泻") for i in range(4)] + [_case(5, "J11", "流行性感冒")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svg = epidemic_curve(cases, fmt="svg").decode()
        png = epidemic_curve(cases, fmt="png")
    assert "感染性腹泻" in svg and "流行性感冒" in svg  # glyph comments or text, not pinyin
    assert "Ganranxing" not in svg
    assert png.startswith(b"\x89PNG")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert missing == []  # every Chinese glyph was drawn with a font that has it


@pytest.mark.usefixtures("fresh_lookup")
def test_workbench_chart_names_the_cjk_family() -> None:
    _require_noto()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svg = charts.epicurve_svg("流行曲线", ["2026-W36", "2026-W37"], {"流行性感冒": [2, 3]}, "病例数")
    assert "流行曲线" in svg and "流行性感冒" in svg
    assert "Noto Sans CJK SC" in svg  # text kept as text, with the CJK family named first
    assert not [w for w in caught if "missing from font" in str(w.message)]


@pytest.mark.usefixtures("fresh_lookup")
def test_falls_back_with_a_warning_without_cjk_fonts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chart_font, "CJK_FAMILIES", ("No Such CJK Family",))
    monkeypatch.setattr(chart_font, "_FILE_HINTS", ("no-such-font-file",))
    with caplog.at_level(logging.WARNING, logger=chart_font.__name__):
        assert chart_font.cjk_family() is None
    assert "no font with Chinese glyphs" in caplog.text
    assert chart_font.chart_families() == ["DejaVu Sans"]
    assert chart_font.cjk_font_properties() is None
    png = epidemic_curve([_case(0, "J11", "流行性感冒")], fmt="png")
    assert png.startswith(b"\x89PNG")  # still drawn, legend in pinyin
    assert b"Liuxingxingganmao" in epidemic_curve([_case(0, "J11", "流行性感冒")], fmt="svg")
