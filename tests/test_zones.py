"""Zone-layer import and its validation report, on real files and real PostGIS."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from shapely.geometry import Polygon, box

from spatial.errors import InvalidInput
from spatial.models import Zone, ZoneLayer
from spatial.settings import PROJECT_ROOT
from spatial.zones import create_city, import_layer, layer_report_text, read_polygons

LA_NC = PROJECT_ROOT / "intake/demo/data/los_angeles/la_neighborhood_councils.geojson"
# Near the central meridian of UTM 11N, where planar metres are almost true metres.
X0, Y0 = 500_000.0, 3_770_000.0


def utm_boxes(boxes: dict[str, tuple[float, float, float, float]]) -> gpd.GeoDataFrame:
    """Boxes given in metres from (X0, Y0), in EPSG:32611."""
    return gpd.GeoDataFrame(
        {"code": list(boxes), "name": [f"Zone {c}" for c in boxes]},
        geometry=[box(X0 + a, Y0 + b, X0 + c, Y0 + d) for a, b, c, d in boxes.values()],
        crs=32611,
    )


def utm_to_lonlat(x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(32611, 4326, always_xy=True).transform(X0 + x, Y0 + y)


def write_boundary(tmp_path: Path, extent=(0, 0, 1000, 1000)) -> Path:
    path = tmp_path / "boundary.geojson"
    utm_boxes({"city": extent}).to_crs(4326).to_file(path, driver="GeoJSON")
    return path


def zone_rows(session, layer_id: int) -> dict[str, dict]:
    rows = session.execute(
        sa.text(
            "SELECT code, name, ST_IsValid(geom) AS valid, GeometryType(geom) AS type, "
            "ST_NumGeometries(geom) AS parts, ST_Area(geom::geography) AS area_m2, "
            "ST_X(ST_Centroid(geom)) AS lon, ST_Y(ST_Centroid(geom)) AS lat "
            "FROM zone WHERE layer_id = :id"
        ),
        {"id": layer_id},
    ).mappings()
    return {r["code"]: dict(r) for r in rows}


def test_la_neighborhood_councils(sessions, tmp_path):
    src = tmp_path / "councils.geojson"
    shutil.copy(LA_NC, src)
    with sessions.begin() as s:
        city = create_city(s, "la", "Los Angeles", "America/Los_Angeles", src)
        result = import_layer(s, city, src, "neighborhood-councils", "nc_id", "name")
        assert (city.metric_srid, city.public_id_prefix) == (32611, "LA")
        zones = zone_rows(s, result.layer.id)
        stored_report = s.scalar(sa.select(ZoneLayer.report).where(ZoneLayer.id == result.layer.id))

    source = gpd.read_file(src)
    assert len(zones) == 99
    assert set(zones) == set(source["nc_id"])
    assert zones["19"]["name"] == source.loc[source.nc_id == "19", "name"].item()
    assert all(z["valid"] and z["type"] == "MULTIPOLYGON" for z in zones.values())
    rep = result.report
    assert stored_report == rep
    assert (rep["features"], rep["zones"], rep["repaired"], rep["dropped"]) == (99, 99, [], [])

    # Overlaps measured independently: shapely intersections of the lon/lat polygons (as
    # PostGIS does them), measured in UTM 11N metres.
    geo = source.set_index("nc_id").geometry
    expected = {}
    for i, j in zip(*geo.sindex.query(geo.values, predicate="intersects"), strict=True):
        if i < j:
            part = gpd.GeoSeries([geo.iloc[i].intersection(geo.iloc[j])], crs=4326)
            area = part.to_crs(32611).area.item()
            if area > 1:
                expected[frozenset((geo.index[i], geo.index[j]))] = area
    reported = {frozenset((o["a"], o["b"])): o["area_m2"] for o in rep["overlaps"]}
    assert rep["overlap_count"] == len(rep["overlaps"]) == len(expected) > 100
    assert reported.keys() == expected.keys()
    for pair, area in expected.items():
        # long thin slivers shift a little between straight UTM and geodesic edges
        assert reported[pair] == pytest.approx(area, rel=0.01 if area > 1000 else 0.05, abs=0.5)
    biggest = rep["overlaps"][0]
    assert {biggest["a"], biggest["b"]} == {"18", "19"}
    assert biggest["area_m2"] == pytest.approx(8.11e6, rel=0.01)
    assert biggest["geometry"]["type"] in {"Polygon", "MultiPolygon"}

    # The city is the union of these very polygons with its slivers (holes under 1 ha)
    # filled: the only gaps are those slivers between neighbouring councils.
    assert rep["gap_count"] > 500
    assert max(g["area_m2"] for g in rep["gaps"]) < 10_000
    assert rep["coverage_pct"] > 99.9 and rep["coverage_pct"] < 100
    assert rep["outside_boundary"] == []
    text = layer_report_text(rep)
    assert (
        f"overlaps: {len(expected)} pairs, {rep['overlap_area_m2'] / 1e6:,.3f} km2 in all" in text
    )
    assert any(line.startswith("  overlap 19 / 18: 8.1") for line in text)


def test_fields_are_detected_and_codes_normalised(sessions, tmp_path):
    path = tmp_path / "wards.gpkg"
    gdf = utm_boxes({"a": (0, 0, 500, 1000), "b": (500, 0, 1000, 1000)})
    gdf = gdf.drop(columns=["code", "name"]).assign(
        ward_id=[19.0, 20.0], ward_name=["North", None], other=[1, 2]
    )
    gdf.to_file(path, driver="GPKG")
    with sessions.begin() as s:
        city = create_city(s, "t", "Test Town", "Europe/Paris", write_boundary(tmp_path))
        rep = import_layer(s, city, path, "wards").report
        zones = zone_rows(s, s.scalar(sa.select(ZoneLayer.id)))
        props = s.scalar(sa.select(Zone.properties).where(Zone.code == "19"))
    assert (rep["code_field"], rep["name_field"]) == ("ward_id", "ward_name")
    assert {c: z["name"] for c, z in zones.items()} == {"19": "North", "20": "20"}
    assert props == {"ward_id": 19.0, "ward_name": "North", "other": 1}
    assert rep["overlaps"] == [] and rep["gaps"] == []


def test_bow_tie_is_repaired_and_empty_geometry_dropped(sessions, tmp_path):
    lon, lat = utm_to_lonlat(0, 0)
    d = 0.001
    bow_tie = Polygon([(lon, lat), (lon + d, lat + d), (lon + d, lat), (lon, lat + d), (lon, lat)])
    assert not bow_tie.is_valid
    square = box(lon + 2 * d, lat, lon + 3 * d, lat + d)
    path = tmp_path / "bowtie.geojson"
    gpd.GeoDataFrame(
        {"code": ["bow", "sq", "none"], "name": ["Bow tie", "Square", "Nothing"]},
        geometry=[bow_tie, square, None],
        crs=4326,
    ).to_file(path, driver="GeoJSON")
    boundary = tmp_path / "b.geojson"
    gpd.GeoDataFrame(geometry=[box(lon, lat, lon + 3 * d, lat + d)], crs=4326).to_file(boundary)

    with sessions.begin() as s:
        city = create_city(s, "bt", "Bow Tie", "UTC", boundary)
        result = import_layer(s, city, path, "ties")
        zones = zone_rows(s, result.layer.id)

    rep = result.report
    assert rep["repaired"] == [
        {"code": "bow", "name": "Bow tie", "reason": shapely.is_valid_reason(bow_tie)}
    ]
    assert rep["repaired"][0]["reason"].startswith("Self-intersection")
    assert rep["dropped"] == [{"code": "none", "name": "Nothing", "reason": "empty geometry"}]
    assert set(zones) == {"bow", "sq"}
    bow = zones["bow"]
    assert bow["valid"] and bow["type"] == "MULTIPOLYGON" and bow["parts"] == 2
    # the two triangles of the bow tie are half of the square they span
    assert bow["area_m2"] == pytest.approx(zones["sq"]["area_m2"] / 2, rel=0.01)
    # uncovered: the two other triangles of the bow tie's square, and the middle square
    assert rep["gap_count"] == 3
    assert rep["gap_area_m2"] == pytest.approx(bow["area_m2"] + zones["sq"]["area_m2"], rel=0.01)
    text = layer_report_text(rep)
    assert "repaired: 1" in text
    assert f"  repaired bow (Bow tie): {rep['repaired'][0]['reason']}" in text
    assert "  dropped none (Nothing): empty geometry" in text


def test_known_overlap_gap_and_outside_zone(sessions, tmp_path):
    # City 1000 m x 1000 m. A and B share a 100 m x 100 m square; between B and C lies
    # a 500 m x 200 m gap; D is far outside.
    layer = utm_boxes(
        {
            "A": (0, 0, 500, 1000),
            "B": (400, 0, 1000, 100),
            "C": (500, 300, 1000, 1000),
            "D": (5000, 5000, 5100, 5100),
        }
    )
    path = tmp_path / "crews.gpkg"
    layer.to_file(path, driver="GPKG")
    with sessions.begin() as s:
        city = create_city(s, "sq", "Square City", "America/Los_Angeles", write_boundary(tmp_path))
        rep = import_layer(s, city, path, "crews", title="Street crews").report
        assert city.metric_srid == 32611

    assert [(o["a"], o["b"]) for o in rep["overlaps"]] == [("A", "B")]
    assert rep["overlaps"][0]["area_m2"] == pytest.approx(100 * 100, rel=0.01)
    assert rep["overlaps"][0]["geometry"]["type"] == "Polygon"
    assert len(rep["gaps"]) == 1
    gap = rep["gaps"][0]
    assert gap["area_m2"] == pytest.approx(500 * 200, rel=0.01)
    assert rep["gap_area_m2"] == gap["area_m2"]
    assert gap["centroid"] == pytest.approx(utm_to_lonlat(750, 200), abs=1e-5)
    assert gap["geometry"]["type"] == "Polygon"
    assert rep["coverage_pct"] == pytest.approx(90.0, abs=0.1)
    assert rep["outside_boundary"] == ["D"]
    text = layer_report_text(rep)
    assert any(line.startswith("  overlap A / B: 10,0") for line in text)
    assert any(line.startswith("  gap of 100,") for line in text)
    assert any(line.startswith("zones reaching outside the city") and line.endswith(": 1 (D)")
               for line in text)  # fmt: skip
    assert rep["outside"] == [
        {"code": "D", "name": "Zone D", "outside_m2": pytest.approx(100 * 100, rel=0.01),
         "outside_pct": 100.0}
    ]  # fmt: skip


def _write_shapefile_folder(gdf: gpd.GeoDataFrame, folder: Path) -> Path:
    folder.mkdir()
    gdf.to_file(folder / "zones.shp")
    return folder


def _write_shapefile_zip(gdf: gpd.GeoDataFrame, tmp_path: Path) -> Path:
    folder = _write_shapefile_folder(gdf, tmp_path / "shp")
    path = tmp_path / "zones.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"zones/{f.name}")
    return path


def _write_gpkg(gdf: gpd.GeoDataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "zones.gpkg"
    gdf.to_file(path, driver="GPKG")
    return path


@pytest.mark.parametrize(
    ("fmt", "crs"),
    [("shapefile-folder", 2229), ("shapefile-zip", 3857), ("geopackage", 2229)],
)
def test_projected_files_are_reprojected(sessions, tmp_path, fmt, crs):
    # Downtown Los Angeles, about 1 km across.
    lonlat = gpd.GeoDataFrame(
        {"code": ["dtla", "arts"]},
        geometry=[box(-118.26, 34.04, -118.25, 34.05), box(-118.25, 34.04, -118.24, 34.05)],
        crs=4326,
    )
    projected = lonlat.to_crs(crs)
    assert abs(projected.total_bounds[0]) > 1000  # really not degrees
    writer = {
        "shapefile-folder": lambda: _write_shapefile_folder(projected, tmp_path / "folder"),
        "shapefile-zip": lambda: _write_shapefile_zip(projected, tmp_path),
        "geopackage": lambda: _write_gpkg(projected, tmp_path),
    }[fmt]
    path = writer()
    with sessions.begin() as s:
        city = create_city(s, "dt", "Downtown", "America/Los_Angeles", path)
        layer = import_layer(s, city, path, "districts").layer
        zones = zone_rows(s, layer.id)
        bounds = s.execute(
            sa.text("SELECT ST_XMin(boundary), ST_YMax(boundary) FROM jurisdiction")
        ).one()
    assert zones["dtla"]["lon"] == pytest.approx(-118.255, abs=1e-5)
    assert zones["dtla"]["lat"] == pytest.approx(34.045, abs=1e-5)
    assert zones["arts"]["lon"] == pytest.approx(-118.245, abs=1e-5)
    assert tuple(bounds) == pytest.approx((-118.26, 34.05), abs=1e-5)


def test_reimport_adds_a_current_version_and_keeps_the_old_one(sessions, tmp_path):
    boundary = write_boundary(tmp_path)
    v1 = tmp_path / "v1.geojson"
    v2 = tmp_path / "v2.geojson"
    utm_boxes({"W": (0, 0, 500, 1000), "E": (500, 0, 1000, 1000)}).to_file(v1)
    utm_boxes({"ALL": (0, 0, 1000, 1000)}).to_file(v2)
    with sessions.begin() as s:
        city = create_city(s, "re", "Re Import", "UTC", boundary)
        first = import_layer(s, city, v1, "crews").layer
        first_zone_ids = set(s.scalars(sa.select(Zone.id).where(Zone.layer_id == first.id)))
    with sessions.begin() as s:
        second = import_layer(s, city, v2, "crews").layer
    with sessions.begin() as s:
        layers = s.execute(
            sa.select(ZoneLayer.version, ZoneLayer.is_current, sa.func.array_agg(Zone.code))
            .join(Zone, Zone.layer_id == ZoneLayer.id)
            .group_by(ZoneLayer.id)
            .order_by(ZoneLayer.version)
        ).all()
        still = set(s.scalars(sa.select(Zone.id).where(Zone.layer_id == first.id)))
    assert second.version == 2
    assert [(v, cur, sorted(codes)) for v, cur, codes in layers] == [
        (1, False, ["E", "W"]),
        (2, True, ["ALL"]),
    ]
    assert still == first_zone_ids


def test_read_polygons_rejects_bad_files(tmp_path):
    gdf = utm_boxes({"a": (0, 0, 100, 100)})

    def err(path, **kw) -> str:
        with pytest.raises(InvalidInput) as info:
            read_polygons(path, **kw)
        msg = str(info.value)
        assert "\n" not in msg
        return msg

    assert "no such file" in err(tmp_path / "missing.geojson")
    (tmp_path / "notes.geojson").write_text("these are my notes, not GeoJSON\n")
    assert "not a readable GeoJSON file" in err(tmp_path / "notes.geojson")
    (tmp_path / "zones.csv").write_text("a,b\n1,2\n")
    assert "unsupported file type '.csv'" in err(tmp_path / "zones.csv")
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    assert "has no features" in err(empty)
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=gpd.points_from_xy([1, 2], [3, 4]), crs=4326).to_file(points)
    assert "no polygon geometries (found Point)" in err(points)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    assert "not a readable zip file" in err(tmp_path / "broken.zip")

    # A Shapefile without .prj: lon/lat numbers are accepted, metres are not.
    metres = _write_shapefile_folder(gdf, tmp_path / "metres")
    (metres / "zones.prj").unlink()
    assert "coordinates are not longitude/latitude" in err(metres)
    degrees = _write_shapefile_folder(gdf.to_crs(4326), tmp_path / "degrees")
    (degrees / "zones.prj").unlink()
    read = read_polygons(degrees)
    assert read.crs.to_epsg() == 4326
    assert read.total_bounds == pytest.approx(gdf.to_crs(4326).total_bounds)
    # GeoJSON without a crs member is read as lon/lat: projected numbers must not pass.
    feet = tmp_path / "feet.geojson"
    feet.write_text(gdf.to_crs(2229).set_crs(None, allow_override=True).to_json())
    assert "coordinates are not longitude/latitude" in err(feet)

    two = tmp_path / "two.gpkg"
    gdf.to_file(two, layer="first", driver="GPKG")
    gdf.to_file(two, layer="second", driver="GPKG")
    assert "several layers (first, second): name the one to use" in err(two)
    assert "no layer 'third'" in err(two, layer="third")
    assert len(read_polygons(two, layer="second")) == 1


def test_sliver_holes_are_filled_but_enclaves_stay():
    from shapely.geometry import MultiPolygon, Polygon

    from spatial.zones import fill_small_holes

    # ~1.1 km square near LA with a 5 m x 5 m sliver hole and a 300 m x 300 m enclave
    d = 0.01
    sliver = [(-118.2499, 34.0501), (-118.24985, 34.0501), (-118.24985, 34.05015)]
    enclave = [(-118.245, 34.052), (-118.24175, 34.052), (-118.24175, 34.0547), (-118.245, 34.0547)]
    mp = MultiPolygon(
        [
            Polygon(
                [
                    (-118.25, 34.05),
                    (-118.25 + d, 34.05),
                    (-118.25 + d, 34.05 + d),
                    (-118.25, 34.05 + d),
                ],
                [sliver, enclave],
            )
        ]
    )
    filled = fill_small_holes(mp, 32611, 10_000)
    assert len(filled.geoms[0].interiors) == 1
    assert filled.geoms[0].interiors[0].coords[0] == enclave[0]
    assert len(fill_small_holes(mp, 32611, 1e9).geoms[0].interiors) == 0
