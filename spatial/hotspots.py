"""Hot and cold spots of request density: Getis-Ord Gi* on the hexagon grid.

The variable is the number of filtered requests in each ``ST_HexagonGrid`` cell of the city
(:mod:`spatial.analytics`; requests on flagged points are left out). The cells are every
cell that meets the city's boundary, plus any cell outside it that holds a request, so
empty parts of the city count as the zeros they are.

Neighbourhood (stated on the page): first-order contiguity of hexagons, i.e. the six
cells sharing an edge with a cell (queen and rook contiguity coincide on a hexagon grid),
plus the cell itself, which is what makes it Gi* rather than Gi; binary weights.
``esda.G_Local(y, w, transform="B", star=True)`` gives the statistic; the z-score is its
analytical one (``Zs``), and a cell is a hot (cold) spot at 99 / 95 / 90 % confidence
when z >= 2.576 / 1.960 / 1.645 (z <= the negatives), two-sided.

Emerging hotspots compare the chosen period with the window of equal length before it,
on the same cells.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.analytics import (
    DEFAULT_HEX,
    Filters,
    FlaggedPoint,
    base_cte,
    boundary_cells,
    check_hex_size,
    flagged_points,
    hex_cell_sql,
    hex_geometries,
    hex_params,
    located_cte,
)
from spatial.models import Jurisdiction

NEIGHBOURHOOD = (
    "first-order contiguity: each hexagon with the six hexagons that share an edge with it, "
    "plus itself (Gi*), binary weights"
)
LEVELS = ((99, 2.576), (95, 1.960), (90, 1.645))  # confidence %, two-sided critical z

# Odd columns sit half a cell higher (ST_HexagonGrid), so the side neighbours of an even
# column are rows j-1 and j, of an odd column rows j and j+1.
_EVEN_SIDES = ((-1, -1), (-1, 0), (1, -1), (1, 0))
_ODD_SIDES = ((-1, 0), (-1, 1), (1, 0), (1, 1))


def hex_neighbours(cells: np.ndarray) -> dict[int, list[int]]:
    """Edge neighbours among ``cells`` (an ``(n, 2)`` array of i, j) by position."""
    index = {(int(i), int(j)): k for k, (i, j) in enumerate(cells)}
    out: dict[int, list[int]] = {}
    for k, (i, j) in enumerate(cells):
        i, j = int(i), int(j)
        sides = _ODD_SIDES if i & 1 else _EVEN_SIDES
        candidates = [(i, j - 1), (i, j + 1), *((i + di, j + dj) for di, dj in sides)]
        out[k] = sorted(index[c] for c in candidates if c in index)
    return out


def classify(z: float) -> str:
    """'hot 99', 'cold 95', ... or 'none' for a z-score."""
    if z is None or not np.isfinite(z):
        return "none"
    for level, critical in LEVELS:
        if z >= critical:
            return f"hot {level}"
        if z <= -critical:
            return f"cold {level}"
    return "none"


def gi_star(y: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-scores and two-sided normal p-values of ``y`` over hexagon ``cells``."""
    n = len(y)
    if n < 3 or not np.any(y) or np.all(y == y[0]):
        return np.full(n, np.nan), np.full(n, np.nan)
    with warnings.catch_warnings():
        # Cells cut off by the city's outline (islands) are expected, not a problem.
        warnings.simplefilter("ignore")
        w = libpysal.weights.W(hex_neighbours(cells), silence_warnings=True)
        g = esda.G_Local(y.astype(np.float64), w, transform="B", star=True, permutations=0)
    z = np.asarray(g.Zs, dtype=np.float64)
    return z, 2 * np.asarray(g.p_norm, dtype=np.float64)


@dataclass
class HotspotResult:
    cells: gpd.GeoDataFrame  # i, j, requests, z, p, spot (+ previous-period columns)
    flagged: list[FlaggedPoint]
    cell_size: int
    neighbourhood: str = NEIGHBOURHOOD
    previous: Filters | None = None


CELL_COUNTS_SQL = """WITH {base}, {located}, cells AS ({hexed})
    SELECT ci AS i, cj AS j, count(*) AS n FROM cells GROUP BY ci, cj"""


def cell_counts(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    size: int,
    flagged: list[FlaggedPoint],
    now: datetime | None = None,
) -> dict[tuple[int, int], int]:
    """Requests per hexagon (i, j) for the filter, without the flagged points."""
    base = base_cte(city, f, flagged)
    sql = CELL_COUNTS_SQL.format(base=base.where, located=located_cte("b.id"), hexed=hex_cell_sql())
    params: dict[str, Any] = {
        **base.params,
        **hex_params(city, size),
        "now": now or datetime.now().astimezone(),
    }
    return {(r.i, r.j): int(r.n) for r in session.execute(sa.text(sql), params)}


def _grid(session: Session, city: Jurisdiction, size: int, *counts: dict) -> np.ndarray:
    keys = {tuple(c) for c in boundary_cells(session, city, size).tolist()}
    for c in counts:
        keys.update(c)
    return np.array(sorted(keys), dtype=np.int64).reshape(-1, 2)


def hotspots(
    session: Session,
    city: Jurisdiction,
    f: Filters,
    size: int = DEFAULT_HEX,
    compare: bool = False,
    now: datetime | None = None,
) -> HotspotResult:
    """Gi* per hexagon for the filter; with ``compare`` also for the previous window of
    equal length (``f`` needs start and end) and an ``emerging`` class per cell."""
    size = check_hex_size(size)
    flagged = [] if f.include_flagged else flagged_points(session, city, f)
    counts = cell_counts(session, city, f, size, flagged, now)
    previous = None
    before: dict[tuple[int, int], int] = {}
    if compare:
        previous = f.previous()
        flagged_before = [] if f.include_flagged else flagged_points(session, city, previous)
        before = cell_counts(session, city, previous, size, flagged_before, now)
    cells = _grid(session, city, size, counts, before)
    keys = [tuple(c) for c in cells.tolist()]
    y = np.array([counts.get(k, 0) for k in keys], dtype=np.float64)
    z, p = gi_star(y, cells)
    df = pd.DataFrame(
        {
            "area": [f"{i}:{j}" for i, j in keys],
            "i": cells[:, 0],
            "j": cells[:, 1],
            "requests": y.astype(np.int64),
            "z": z,
            "p": p,
            "spot": [classify(v) for v in z],
        }
    )
    if compare:
        y0 = np.array([before.get(k, 0) for k in keys], dtype=np.float64)
        z0, p0 = gi_star(y0, cells)
        df["previous_requests"] = y0.astype(np.int64)
        df["previous_z"] = z0
        df["previous_spot"] = [classify(v) for v in z0]
        df["emerging"] = [
            emerging_class(a, b, za, zb)
            for a, b, za, zb in zip(df["previous_spot"], df["spot"], z0, z, strict=True)
        ]
    gdf = gpd.GeoDataFrame(df, geometry=hex_geometries(session, city, size, cells), crs=4326)
    return HotspotResult(gdf, flagged, size, previous=previous)


def emerging_class(before: str, now: str, z_before: float, z_now: float) -> str:
    """How a cell changed between two periods (hot/cold at 90 % or more)."""
    hot_b, hot_n = before.startswith("hot"), now.startswith("hot")
    cold_b, cold_n = before.startswith("cold"), now.startswith("cold")
    if hot_n and not hot_b:
        return "new hot spot"
    if hot_n and hot_b:
        return "intensifying hot spot" if z_now > z_before else "persistent hot spot"
    if hot_b:
        return "former hot spot"
    if cold_n and not cold_b:
        return "new cold spot"
    if cold_n:
        return "persistent cold spot"
    if cold_b:
        return "former cold spot"
    return "none"
