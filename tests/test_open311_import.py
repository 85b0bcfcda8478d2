"""``civicpin city import-open311``: a city's catalogue brought from its previous Open311
server (services.json and the service definitions), keeping the service codes, so that an
app configured for that server keeps posting the same codes and answers here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from spatial.apikeys import create_key
from spatial.models import Service, ServiceAttribute, ServiceRequest
from spatial.models_ops import AdminEvent
from tests.support.city import INSIDE, make_small_city

V2 = "/open311/v2"
GRAFFITI = "4fd3b167e750846744000005"
POTHOLE = "4ffa4c69601827691b000018"
LIGHT = "4fd6e4ece750840569000019"

# Modelled on a large city's public GeoReport v2 catalogue: opaque ids as codes, some
# services with definitions (metadata true), one without.
SERVICES = [
    {
        "service_code": GRAFFITI,
        "service_name": "Graffiti Removal",
        "description": "Remove graffiti from a building, bridge or other structure.",
        "metadata": True,
        "type": "realtime",
        "keywords": "graffiti, paint, vandalism",
        "group": "Sanitation",
    },
    {
        "service_code": POTHOLE,
        "service_name": "Pothole in Street",
        "description": "Report a pothole in the street.",
        "metadata": True,
        "type": "realtime",
        "keywords": "",
        "group": "Transportation",
    },
    {
        "service_code": LIGHT,
        "service_name": "Street Light Out",
        "description": None,
        "metadata": False,
        "type": "batch",
        "keywords": None,
        "group": "Transportation",
    },
]
DEFINITIONS = {
    GRAFFITI: {
        "service_code": GRAFFITI,
        "attributes": [
            {
                "variable": True,
                "code": "SURFACE",
                "datatype": "singlevaluelist",
                "required": True,
                "datatype_description": "The material the graffiti is on",
                "order": 1,
                "description": "What type of surface is the graffiti on?",
                "values": [
                    {"key": "BRICK", "name": "Brick - Painted"},
                    {"key": "METAL", "name": "Metal"},
                    {"key": "WOOD", "name": "Wood"},
                ],
            },
            {
                "variable": True,
                "code": "WHERE",
                "datatype": "multivaluelist",
                "required": False,
                "datatype_description": None,
                "order": 3,
                "description": "Where is the graffiti?",
                "values": [
                    {"key": 1, "name": "Front of building"},
                    {"key": 2, "name": "Side"},
                    {"key": 3, "name": "Garage"},
                ],
            },
            {
                "variable": True,
                "code": "OFFENSIVE",
                "datatype": "string",
                "required": False,
                "datatype_description": "Yes or no",
                "order": 2,
                "description": "Is the graffiti offensive?",
                "values": [],
            },
        ],
    },
    POTHOLE: {
        "service_code": POTHOLE,
        "attributes": [
            {
                "variable": True,
                "code": "SIZE",
                "datatype": "number",
                "required": True,
                "order": 1,
                "description": "About how wide is it (inches)?",
            },
            {
                "variable": True,
                "code": "SEEN",
                "datatype": "datetime",
                "required": False,
                "order": 2,
                "description": "When did you first see it?",
            },
            {
                "variable": True,
                "code": "NOTES",
                "datatype": "text",
                "required": "false",
                "order": 3,
                "description": "Anything else the crew should know?",
            },
        ],
    },
}


def write_catalogue(tmp: Path, services=SERVICES, definitions=DEFINITIONS) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    services_path = tmp / "services.json"
    services_path.write_text(json.dumps(services, indent=2))
    folder = tmp / "definitions"
    folder.mkdir(exist_ok=True)
    for code, definition in definitions.items():
        (folder / f"{code}.json").write_text(json.dumps(definition, indent=2))
    return services_path, folder


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        make_small_city(s)
        _, key = create_key(s, "testville", "old city app")
    return key


def _state(sessions) -> tuple:
    with sessions() as s:
        return (
            s.execute(
                sa.select(
                    Service.code, Service.name, Service.group, Service.keywords, Service.type
                ).order_by(Service.code)
            ).all(),
            s.execute(
                sa.select(
                    ServiceAttribute.code,
                    ServiceAttribute.datatype,
                    ServiceAttribute.required,
                    ServiceAttribute.order,
                    ServiceAttribute.values,
                ).order_by(ServiceAttribute.id)
            ).all(),
            s.scalar(sa.select(sa.func.count()).select_from(AdminEvent)),
        )


def _import(cli, services: Path, folder: Path, *extra: str):
    return cli(
        "city", "import-open311", str(services), "--definitions", str(folder),
        "--city", "testville", *extra,
    )  # fmt: skip


def test_an_imported_catalogue_keeps_its_codes_and_old_apps_keep_working(
    cli, client, sessions, city, tmp_path
):
    services, folder = write_catalogue(tmp_path / "old")
    before = _state(sessions)
    res = _import(cli, services, folder, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"create {GRAFFITI} 'Graffiti Removal' with 3 question(s)" in res.stdout
    assert "dry run, nothing written: would be 3 created, 0 updated" in res.stdout
    assert _state(sessions) == before

    res = _import(cli, services, folder)
    assert res.returncode == 0, res.stderr
    assert "3 created, 0 updated, 0 unchanged of 3 service(s) in testville" in res.stdout

    listed = {s["service_code"]: s for s in client.get(f"{V2}/services.json").get_json()}
    assert listed[GRAFFITI] | {"description": None} == {
        "service_code": GRAFFITI,
        "service_name": "Graffiti Removal",
        "description": None,
        "metadata": True,
        "type": "realtime",
        "keywords": "graffiti, paint, vandalism",
        "group": "Sanitation",
    }
    assert listed[LIGHT]["metadata"] is False and listed[LIGHT]["type"] == "batch"
    definition = client.get(f"{V2}/services/{GRAFFITI}.json").get_json()
    assert [
        (a["code"], a["datatype"], a["required"], a["order"]) for a in definition["attributes"]
    ] == [
        ("SURFACE", "singlevaluelist", True, 1),
        ("OFFENSIVE", "string", False, 2),
        ("WHERE", "multivaluelist", False, 3),
    ]
    assert definition["attributes"][0]["datatype_description"] == "The material the graffiti is on"
    assert definition["attributes"][2]["values"][0] == {"key": "1", "name": "Front of building"}

    # The same files again: nothing changes, and the command says so.
    state = _state(sessions)
    res = _import(cli, services, folder)
    assert res.returncode == 0, res.stderr
    assert (
        res.stdout.strip()
        == "nothing to change: 0 created, 0 updated, 3 unchanged of 3 service(s) in testville"
    )
    assert _state(sessions) == state

    # An app configured for the old server posts its codes and answers, unchanged.
    res = client.post(
        f"{V2}/requests.json",
        data={
            "api_key": city,
            "service_code": GRAFFITI,
            "lat": str(INSIDE[0]),
            "long": str(INSIDE[1]),
            "attribute[SURFACE]": "METAL",
            "attribute[WHERE][]": ["1", "3"],
            "description": "Tags on the garage door",
        },
    )
    assert res.status_code == 200, res.get_data(as_text=True)
    res = client.post(
        f"{V2}/requests.json",
        data={
            "api_key": city,
            "service_code": POTHOLE,
            "lat": str(INSIDE[0]),
            "long": str(INSIDE[1]),
            "attribute[SIZE]": "14",
            "attribute[SEEN]": "2026-11-30T08:15:00-08:00",
        },
    )
    assert res.status_code == 200, res.get_data(as_text=True)
    res = client.post(
        f"{V2}/requests.json",
        data={"api_key": city, "service_code": GRAFFITI, "lat": "34.05", "long": "-118.25"},
    )
    assert res.status_code == 400 and "SURFACE" in res.get_data(as_text=True)
    with sessions() as s:
        answers = s.scalars(sa.select(ServiceRequest.attributes).order_by(ServiceRequest.id)).all()
    assert answers[0] == {"SURFACE": "METAL", "WHERE": ["1", "3"]}
    assert answers[1]["SIZE"] == 14

    # The old server changed: a renamed service, a question dropped, one added.
    changed = json.loads(json.dumps(DEFINITIONS))
    changed[POTHOLE]["attributes"].pop(2)
    changed[POTHOLE]["attributes"].append(
        {
            "code": "LANE",
            "datatype": "singlevaluelist",
            "required": False,
            "order": 3,
            "description": "Which lane?",
            "values": [{"key": "L", "name": "Left"}, {"key": "R", "name": "Right"}],
        }
    )
    services_changed = [dict(s) for s in SERVICES]
    services_changed[2]["service_name"] = "Street Lights - All/Out"
    services, folder = write_catalogue(tmp_path / "new", services_changed, changed)
    res = _import(cli, services, folder)
    assert res.returncode == 0, res.stderr
    assert f"update {POTHOLE}: question LANE added; question NOTES removed" in res.stdout
    assert f"update {LIGHT}: name" in res.stdout
    assert "0 created, 2 updated, 1 unchanged" in res.stdout
    definition = client.get(f"{V2}/services/{POTHOLE}.json").get_json()
    assert [a["code"] for a in definition["attributes"]] == ["SIZE", "SEEN", "LANE"]
    with sessions() as s:
        imports = s.scalars(
            sa.select(AdminEvent.action).where(AdminEvent.action == "category.import")
        ).all()
    assert len(imports) == 2  # one per run that changed something


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda sv, df: df[GRAFFITI]["attributes"][0].update(datatype="bool"),
            f"{GRAFFITI}.json attributes[0]: datatype: datatype 'bool' is not one of",
        ),
        (
            lambda sv, df: df[GRAFFITI]["attributes"][0].update(values=[]),
            "needs its values",
        ),
        (
            lambda sv, df: df.pop(POTHOLE),
            f"{POTHOLE}.json: no such file",
        ),
        (
            lambda sv, df: sv[1].update(service_code="pot hole"),
            "services.json[1]: service_code 'pot hole' must be 1-64 letters",
        ),
        (
            lambda sv, df: sv.append(dict(sv[0])),
            "is listed twice",
        ),
        (
            lambda sv, df: df[GRAFFITI]["attributes"][1].update(code="SURFACE"),
            "already has a question with code 'SURFACE'",
        ),
    ],
)
def test_a_bad_catalogue_is_one_line_and_writes_nothing(
    cli, sessions, city, tmp_path, break_it, message
):
    services = [dict(s) for s in SERVICES]
    definitions = json.loads(json.dumps(DEFINITIONS))
    break_it(services, definitions)
    services_path, folder = write_catalogue(tmp_path, services, definitions)
    before = _state(sessions)
    res = _import(cli, services_path, folder)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("civicpin: error: "), res.stderr
    assert message in lines[0]
    assert _state(sessions) == before
