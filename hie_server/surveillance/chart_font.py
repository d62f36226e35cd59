"""The font family charts use for Chinese text (epidemic curve, lab trends, ILI share): one place
for the surveillance service's charts and the workbench's.

Matplotlib keeps a font list cached per user (`~/.cache/matplotlib/fontlist-*.json`); fonts
installed after that cache was written (Debian `fonts-noto-cjk`, installed by `.ci/chromium.sh`)
are not in it, so a lookup by family fails although the font is on disk. `cjk_family()` looks the
family up, and when it is missing adds the CJK font files found among the system fonts to the
font manager (in process; the cache file is left alone) and looks again. Without any such font it
logs one warning and answers None: charts then use matplotlib's default font (the surveillance
legend falls back to pinyin).

May import: matplotlib, the standard library.
"""

from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)

#: Families with Chinese glyphs, preferred first (Noto Sans CJK is Debian's `fonts-noto-cjk`).
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "AR PL UMing CN",
)
_FILE_HINTS = ("notosanscjk", "sourcehansans", "wqy", "simhei", "uming")


def _find(family: str) -> bool:
    from matplotlib import font_manager

    try:
        font_manager.findfont(family, fallback_to_default=False)
    except ValueError:
        return False
    return True


def _add_system_cjk_fonts() -> int:
    """Adds system font files whose names suggest Chinese glyphs; returns how many were added."""
    from matplotlib import font_manager

    added = 0
    for path in font_manager.findSystemFonts():
        if not any(hint in os.path.basename(path).lower() for hint in _FILE_HINTS):
            continue
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError) as exc:  # unreadable or unsupported file
            log.debug("font %s not usable: %s", path, exc)
            continue
        added += 1
    return added


@functools.cache
def cjk_family() -> str | None:
    """The first of `CJK_FAMILIES` matplotlib can use (after adding system CJK fonts missing from
    its cache), or None with a logged warning when no font with Chinese glyphs is installed.
    Computed once per process."""
    for family in CJK_FAMILIES:
        if _find(family):
            return family
    if _add_system_cjk_fonts():
        for family in CJK_FAMILIES:
            if _find(family):
                return family
    log.warning("no font with Chinese glyphs found (install fonts-noto-cjk); charts use the default font")
    return None


def chart_families() -> list[str]:
    """Font family list for matplotlib text: the CJK family when present, then DejaVu Sans
    (matplotlib's default, for Latin text and as the fallback)."""
    family = cjk_family()
    return [family, "DejaVu Sans"] if family else ["DejaVu Sans"]


def cjk_font_properties(size: str | float = "small") -> object | None:
    """`matplotlib.font_manager.FontProperties` of the CJK family at `size`, or None without one."""
    family = cjk_family()
    if family is None:
        return None
    from matplotlib import font_manager

    return font_manager.FontProperties(family=[family, "DejaVu Sans"], size=size)
