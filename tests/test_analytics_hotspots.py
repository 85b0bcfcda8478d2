"""The hexagon grid and Gi* hotspots on the LA demo, against PostGIS's ST_HexagonGrid
polygons, a geopandas spatial join, libpysal contiguity built from the polygons, and esda
called directly."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import sqlalchemy as sa

from spatial import analytics as an
from spatial import hotspots as hs
from spatial.cities import get_city
from spatial.db import make_sessionmaker
from tests.support import analytics_truth as truth

SIZE = 1000


@pytest.fixture(scope="module")
def la(demo_engine):
    return make_sessionmaker(demo_engine)


def test_hexagon_counts_and_times_equal_a_spatial_join_on_st_hexagongrid(la):
    with la() as s:
        city = get_city(s, "los-angeles")
        table = an.grid_metrics(s, city, an.Filters(), SIZE, now=truth.NOW)
        grid, (counts,) = truth.hex_grid(s, city, SIZE, [None])
    got = {(int(i), int(j)): int(n) for i, j, n in zip(
        table.areas["i"], table.areas["j"], table.areas["requests"], strict=True)}  # fmt: skip
    assert got == counts
    assert sum(got.values()) == 9989  # every located request, none twice
    # Median time to close per cell, from the same join.
    pts = truth.points(city.metric_srid)
    hit = gpd.sjoin(pts, grid, predicate="within")
    med = hit.groupby(["i", "j"])["ttc"].median()
    rows = table.areas.set_index(["i", "j"])
    for key, value in med.items():
        assert rows.loc[key, "median_hours"] == pytest.approx(value, rel=1e-12, nan_ok=True)
    # The polygons shown are ST_HexagonGrid's own.
    by_cell = {
        (i, j): g for i, j, g in zip(grid["i"], grid["j"], grid.to_crs(4326).geometry, strict=True)
    }
    for i, j, geom in zip(
        table.areas["i"][:20], table.areas["j"][:20], table.areas.geometry[:20], strict=True
    ):
        assert geom.equals_exact(by_cell[(i, j)], tolerance=1e-9)


def test_gi_star_z_scores_equal_esda_called_directly(la):
    with la() as s:
        city = get_city(s, "los-angeles")
        result = hs.hotspots(s, city, an.Filters(), SIZE)
        grid, (counts,) = truth.hex_grid(s, city, SIZE, [None])
    expected, w = truth.esda_z(grid, counts)
    cells = result.cells
    got = {(int(i), int(j)): z for i, j, z in zip(cells["i"], cells["j"], cells["z"], strict=True)}
    assert set(got) == set(expected)
    for key, z in expected.items():
        assert got[key] == pytest.approx(z, rel=1e-9, abs=1e-9), key
    # Our neighbour lists are the polygons' contiguity, cell for cell.
    index = {
        (int(i), int(j)): k for k, (i, j) in enumerate(zip(cells["i"], cells["j"], strict=True))
    }
    ours = hs.hex_neighbours(cells[["i", "j"]].to_numpy())
    for k, (i, j) in enumerate(zip(grid["i"], grid["j"], strict=True)):
        theirs = sorted(index[(int(grid["i"][m]), int(grid["j"][m]))] for m in w.neighbors[k])
        assert ours[index[(int(i), int(j))]] == theirs
    # Classes follow the two-sided critical values.
    for z, spot in zip(cells["z"], cells["spot"], strict=True):
        if z >= 2.576:
            assert spot == "hot 99"
        elif z >= 1.960:
            assert spot == "hot 95"
        elif z >= 1.645:
            assert spot == "hot 90"
        elif z <= -1.645:
            assert spot.startswith("cold")
        else:
            assert spot == "none"
    assert (cells["spot"] == "hot 99").sum() > 0
    assert "six hexagons that share an edge" in result.neighbourhood


def test_emerging_hotspots_compare_two_equal_windows(la):
    df = truth.requests()
    local = df["requested"].dt.tz_convert(truth.TZ).dt.date.astype(str)
    now_frame = df[local.isin(["2020-01-02", "2020-01-03"])]
    before_frame = df[local.isin(["2019-12-31", "2020-01-01"])]
    with la() as s:
        city = get_city(s, "los-angeles")
        f = an.parse_filters({"start": "2020-01-02", "end": "2020-01-03"})
        result = hs.hotspots(s, city, f, SIZE, compare=True)
        grid, (c_now, c_before) = truth.hex_grid(s, city, SIZE, [now_frame, before_frame])
    assert str(result.previous.start) == "2019-12-31" and str(result.previous.end) == "2020-01-01"
    z_now, _ = truth.esda_z(grid, c_now)
    z_before, _ = truth.esda_z(grid, c_before)
    cells = result.cells
    for i, j, zn, zb, emerging in zip(cells["i"], cells["j"], cells["z"], cells["previous_z"],
                                      cells["emerging"], strict=True):  # fmt: skip
        assert zn == pytest.approx(z_now[(i, j)], rel=1e-9, abs=1e-9)
        assert zb == pytest.approx(z_before[(i, j)], rel=1e-9, abs=1e-9)
        if zn >= 1.645 and zb < 1.645:
            assert emerging == "new hot spot"
        if zn < 1.645 and zb >= 1.645:
            assert emerging == "former hot spot"
    assert (cells["emerging"] == "new hot spot").any()


def test_cell_formula_matches_st_hexagongrid_for_awkward_points(sessions):
    """Points near cell corners and on negative coordinates land where PostGIS says."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-5000, 5000, 4000)
    y = rng.uniform(-5000, 5000, 4000)
    i, j = an.hex_cells_numpy(x, y, 250)
    with sessions() as s:
        rows = s.execute(
            sa.text(
                "SELECT p.k, h.i, h.j FROM unnest(CAST(:x AS float8[]), CAST(:y AS float8[])) "
                "WITH ORDINALITY AS p(x, y, k) "
                "JOIN ST_HexagonGrid(250, ST_MakeEnvelope(-6000, -6000, 6000, 6000, 32611)) h "
                "ON ST_Within(ST_SetSRID(ST_MakePoint(p.x, p.y), 32611), h.geom) ORDER BY p.k"
            ),
            {"x": x.tolist(), "y": y.tolist()},
        ).all()
        sql_cells = s.execute(
            sa.text(
                "WITH located AS (SELECT * FROM unnest(CAST(:x AS float8[]), "
                "CAST(:y AS float8[])) WITH ORDINALITY AS p(x, y, k)) "
                f"SELECT k, ci, cj FROM ({an.hex_cell_sql()}) c ORDER BY k"
            ),
            {"x": x.tolist(), "y": y.tolist(), "hex_size": 250.0, "hex_h": 250.0 * 3**0.5},
        ).all()
    assert len(rows) == 4000
    assert [(r.i, r.j) for r in rows] == list(zip(i.tolist(), j.tolist(), strict=True))
    assert [(r.ci, r.cj) for r in sql_cells] == [(r.i, r.j) for r in rows]
