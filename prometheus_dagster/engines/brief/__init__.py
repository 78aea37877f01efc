"""The daily brief: one HTML page (with its plots as one PNG) per date, from what the warehouse
held for that date. Pure: frames in, HTML and PNG bytes out; ``collect`` reads the warehouse."""

from prometheus_dagster.core.query import WarehouseReader
from prometheus_dagster.engines.brief.collect import BriefData, collect_brief
from prometheus_dagster.engines.brief.render import render_brief, render_figure
from prometheus_dagster.engines.brief.schemas import DAILY_BRIEFS

__all__ = ["DAILY_BRIEFS", "BriefData", "collect_brief", "render_brief", "render_figure",
           "write_brief"]


def write_brief(wh: WarehouseReader, date, markets: list[str], directory) -> tuple:
    """Collect, render and write ``brief.html`` and ``brief.png`` for ``date`` under
    ``directory/<date>/``; returns (html path, png path, BriefData)."""
    from pathlib import Path

    import pandas as pd

    data = collect_brief(wh, pd.Timestamp(date), markets)
    png = render_figure(data)
    out = Path(directory) / str(data.date.date())
    out.mkdir(parents=True, exist_ok=True)
    (out / "brief.png").write_bytes(png)
    (out / "brief.html").write_text(render_brief(data, png), encoding="utf-8")
    return out / "brief.html", out / "brief.png", data
