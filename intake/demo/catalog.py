"""The demo city's set-up as plain data: departments, crew districts, categories, mappings.

Departments are the ``owner_agency`` values of the MyLA311 records. Each category goes to
the agency that owns most of its records (Homeless Encampment goes to LA Sanitation &
Environment, which runs the encampment clean-ups, and Other to the 311 call centre at ITA).
"""

from __future__ import annotations

from typing import Any

CITY = {
    "slug": "los-angeles",
    "name": "City of Los Angeles",
    "timezone": "America/Los_Angeles",
    "prefix": "LA",
}

NC_LAYER = {
    "name": "neighborhood-councils",
    "title": "Neighborhood Councils",
    "code_field": "nc_id",
    "name_field": "name",
}
DISTRICT_LAYER = {
    "name": "crew-districts",
    "title": "Crew districts",
    "code_field": "code",
    "name_field": "name",
}

DEPARTMENTS: list[dict[str, str]] = [
    {"code": "BOS", "name": "Bureau of Sanitation"},
    {"code": "OCB", "name": "Office of Community Beautification"},
    {"code": "BSL", "name": "Bureau of Street Lighting"},
    {"code": "ITA", "name": "Information Technology Agency"},
    {"code": "LASAN", "name": "LA Sanitation & Environment"},
    {"code": "LADWP", "name": "Dept. of Water and Power"},
    {"code": "BSS", "name": "Bureau of Street Services"},
]

# Crew districts, grouped from the councils' centroids (lon, lat). A council goes to the
# first district one of whose boxes (lon_min, lat_min, lon_max, lat_max) holds its
# centroid: the Harbor strip first, then the San Fernando Valley (north of the Santa
# Monica Mountains, split at Balboa Blvd), then the basin by west / south / east.
DISTRICTS: list[dict[str, Any]] = [
    {"code": "HAR", "name": "Harbor", "boxes": [(-180, -90, 180, 33.93)]},
    {"code": "WV", "name": "West Valley", "boxes": [(-180, 34.135, -118.47, 90)]},
    {
        "code": "EV",
        "name": "East Valley",
        "boxes": [(-118.47, 34.135, -118.30, 90), (-118.47, 34.20, 180, 90)],
    },
    {"code": "WLA", "name": "West Los Angeles", "boxes": [(-180, -90, -118.37, 90)]},
    {"code": "SLA", "name": "South Los Angeles", "boxes": [(-180, -90, 180, 34.03)]},
    {"code": "EAST", "name": "East", "boxes": [(-118.245, -90, 180, 90)]},
    {"code": "CEN", "name": "Central", "boxes": [(-180, -90, 180, 90)]},
]

# Crew districts reach this far (metres) past the councils, within their convex hull: the
# council layer has no polygons for Brentwood, Pacific Palisades and United for Victory,
# but their streets are the city's and have crews (the records hold requests up to
# ~7.4 km outside the councils).
DISTRICT_REACH_M = 8000

# Record ``source`` -> channel.
CHANNELS = {
    "Call": "phone",
    "Mobile App": "mobile",
    "Self Service": "web",
    "Email": "email",
    "Driver Self Report": "in_person",
    "Council's Office": "phone",
    "Letter": "mail",
}
DEFAULT_CHANNEL = "phone"

# Record ``status`` -> internal status.
STATUSES = {
    "Closed": "closed",
    "Cancelled": "cancelled",
    "Open": "new",
    "Pending": "in_progress",
    "Referred Out": "referred",
}


def _values(*pairs: str) -> list[dict[str, str]]:
    return [{"key": k, "name": n} for k, n in zip(pairs[::2], pairs[1::2], strict=True)]


LOCATION_TYPES = _values(
    "curb",
    "Curbside / parkway",
    "alley",
    "Alley",
    "sidewalk",
    "Sidewalk",
    "lot",
    "Vacant lot",
    "other",
    "Other",
)

# The 11 request types. ``source`` is the record's category; ``department`` a code above.
SERVICES: list[dict[str, Any]] = [
    {
        "source": "Bulky Items",
        "code": "bulky-items",
        "name": "Bulky item pick-up",
        "group": "Sanitation",
        "department": "BOS",
        "sla_hours": 120,
        "priority": "normal",
        "keywords": ["furniture", "mattress", "couch", "sofa", "pick-up", "bulky"],
        "description": "Free collection of furniture, mattresses and other large items "
        "set out at the curb.",
        "notice": "Bulky item pick-up is free and can be booked for a date of your choice: "
        "book it online or call 311, then set the items out the evening before.",
        "attributes": [
            {
                "code": "item_types",
                "datatype": "multivaluelist",
                "required": True,
                "description": "What items are to be picked up?",
                "values": _values(
                    "furniture",
                    "Furniture",
                    "mattress",
                    "Mattress / box spring",
                    "carpet",
                    "Carpet",
                    "yard",
                    "Yard waste (bundled)",
                    "other",
                    "Other",
                ),
            },
            {
                "code": "item_count",
                "datatype": "number",
                "required": True,
                "description": "How many items?",
                "datatype_description": "A whole number from 1 to 10",
            },
        ],
    },
    {
        "source": "Electronic Waste",
        "code": "electronic-waste",
        "name": "Electronic waste",
        "group": "Sanitation",
        "department": "BOS",
        "sla_hours": 120,
        "priority": "normal",
        "keywords": ["e-waste", "tv", "computer", "monitor", "electronics"],
        "description": "Collection of TVs, computers and other electronics left for pick-up.",
        "notice": "Electronics can also be dropped off free at any S.A.F.E. centre.",
        "attributes": [
            {
                "code": "item_types",
                "datatype": "multivaluelist",
                "required": True,
                "description": "What kind of electronics?",
                "values": _values(
                    "tv",
                    "TV / monitor",
                    "computer",
                    "Computer",
                    "printer",
                    "Printer",
                    "other",
                    "Other",
                ),
            },
            {
                "code": "item_count",
                "datatype": "number",
                "required": False,
                "description": "How many items?",
            },
        ],
    },
    {
        "source": "Metal/Household Appliances",
        "code": "metal-appliances",
        "name": "Metal and household appliances",
        "group": "Sanitation",
        "department": "BOS",
        "sla_hours": 120,
        "priority": "normal",
        "keywords": ["fridge", "refrigerator", "washer", "dryer", "stove", "metal"],
        "description": "Collection of refrigerators, washers, water heaters and scrap metal.",
        "notice": "Appliances are collected with bulky items: one booking covers both.",
        "attributes": [
            {
                "code": "appliance",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "Which appliance?",
                "values": _values(
                    "fridge",
                    "Refrigerator / freezer",
                    "washer",
                    "Washer / dryer",
                    "heater",
                    "Water heater",
                    "stove",
                    "Stove / oven",
                    "metal",
                    "Other metal",
                ),
            },
            {
                "code": "has_refrigerant",
                "datatype": "singlevaluelist",
                "required": False,
                "description": "Does it contain refrigerant (fridge, freezer, A/C)?",
                "values": _values("yes", "Yes", "no", "No", "unknown", "Don't know"),
            },
        ],
    },
    {
        "source": "Illegal Dumping Pickup",
        "code": "illegal-dumping",
        "name": "Illegal dumping",
        "group": "Sanitation",
        "department": "BOS",
        "sla_hours": 72,
        "priority": "normal",
        "keywords": ["dumping", "trash", "debris", "garbage", "junk"],
        "description": "Trash, debris or items dumped on streets, alleys or vacant lots.",
        "notice": None,
        "attributes": [
            {
                "code": "location_type",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "Where is it?",
                "values": LOCATION_TYPES,
            },
            {
                "code": "hazardous",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "Could it be hazardous (chemicals, needles, tyres, oil)?",
                "values": _values("yes", "Yes", "no", "No", "unknown", "Don't know"),
            },
            {
                "code": "details",
                "datatype": "text",
                "required": False,
                "description": "What was dumped, roughly how much?",
            },
        ],
    },
    {
        "source": "Dead Animal Removal",
        "code": "dead-animal",
        "name": "Dead animal removal",
        "group": "Sanitation",
        "department": "BOS",
        "sla_hours": 24,
        "priority": "high",
        "keywords": ["dead", "animal", "carcass", "roadkill"],
        "description": "Removal of dead animals from streets, sidewalks and alleys.",
        "notice": "Pets or animals on private property: call Animal Services.",
        "attributes": [
            {
                "code": "animal",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "What kind of animal?",
                "values": _values(
                    "cat",
                    "Cat",
                    "dog",
                    "Dog",
                    "bird",
                    "Bird",
                    "wildlife",
                    "Wildlife (raccoon, opossum, coyote)",
                    "other",
                    "Other",
                ),
            },
            {
                "code": "location_type",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "Where is it?",
                "values": LOCATION_TYPES,
            },
        ],
    },
    {
        "source": "Graffiti Removal",
        "code": "graffiti",
        "name": "Graffiti removal",
        "group": "Streets & Lighting",
        "department": "OCB",
        "sla_hours": 72,
        "priority": "normal",
        "keywords": ["graffiti", "tag", "vandalism", "paint"],
        "description": "Removal of graffiti from public property and, with consent, "
        "private walls visible from the street.",
        "notice": None,
        "attributes": [
            {
                "code": "surface",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "What is painted?",
                "values": _values(
                    "wall",
                    "Wall / building",
                    "fence",
                    "Fence",
                    "pole",
                    "Pole / signal box",
                    "sign",
                    "Sign",
                    "sidewalk",
                    "Sidewalk / street",
                ),
            },
            {
                "code": "size_sqft",
                "datatype": "number",
                "required": False,
                "description": "Roughly how large (square feet)?",
            },
            {
                "code": "offensive",
                "datatype": "singlevaluelist",
                "required": False,
                "description": "Is it offensive or gang-related?",
                "values": _values("yes", "Yes", "no", "No"),
            },
        ],
    },
    {
        "source": "Homeless Encampment",
        "code": "homeless-encampment",
        "name": "Homeless encampment",
        "group": "Environment",
        "department": "LASAN",
        "sla_hours": 168,
        "priority": "normal",
        "keywords": ["encampment", "tent", "homeless", "unhoused", "care"],
        "description": "Encampment clean-up (CARE) and outreach referral.",
        "notice": "For a medical emergency call 911. To request outreach services for a "
        "person, contact LAHSA.",
        "attributes": [
            {
                "code": "tents",
                "datatype": "number",
                "required": False,
                "description": "About how many tents or structures?",
            },
            {
                "code": "blocking",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "Is the sidewalk or street blocked?",
                "values": _values("yes", "Yes", "partly", "Partly", "no", "No"),
            },
        ],
    },
    {
        "source": "Single Streetlight Issue",
        "code": "streetlight-single",
        "name": "Streetlight out (one light)",
        "group": "Streets & Lighting",
        "department": "BSL",
        "sla_hours": 168,
        "priority": "normal",
        "keywords": ["streetlight", "light", "lamp", "dark", "pole"],
        "description": "One streetlight that is out, flickering or on during the day.",
        "notice": None,
        "attributes": [
            {
                "code": "pole_number",
                "datatype": "string",
                "required": False,
                "description": "Pole number (on a tag on the pole), if you can see it",
            },
            {
                "code": "problem",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "What is wrong?",
                "values": _values(
                    "out",
                    "Light out",
                    "flicker",
                    "Flickering",
                    "day",
                    "On during the day",
                    "damaged",
                    "Pole damaged",
                ),
            },
        ],
    },
    {
        "source": "Multiple Streetlight Issue",
        "code": "streetlight-multiple",
        "name": "Streetlights out (several)",
        "group": "Streets & Lighting",
        "department": "BSL",
        "sla_hours": 72,
        "priority": "high",
        "keywords": ["streetlights", "lights", "dark", "outage", "block"],
        "description": "Several streetlights out on a block or along a street.",
        "notice": None,
        "attributes": [
            {
                "code": "lights_out",
                "datatype": "number",
                "required": True,
                "description": "How many lights are out?",
            },
            {
                "code": "since",
                "datatype": "datetime",
                "required": False,
                "description": "Since when, roughly?",
            },
        ],
    },
    {
        "source": "Report Water Waste",
        "code": "water-waste",
        "name": "Water waste",
        "group": "Environment",
        "department": "LADWP",
        "sla_hours": 48,
        "priority": "normal",
        "keywords": ["water", "sprinkler", "leak", "runoff", "waste"],
        "description": "Sprinklers running in the rain, runoff onto streets, "
        "watering on the wrong day.",
        "notice": "A broken water main or a flooding street is an emergency: call 1-800-342-5397.",
        "attributes": [
            {
                "code": "waste_type",
                "datatype": "singlevaluelist",
                "required": True,
                "description": "What is happening?",
                "values": _values(
                    "sprinkler",
                    "Sprinklers / overwatering",
                    "runoff",
                    "Runoff onto the street",
                    "wrong_day",
                    "Watering on a restricted day",
                    "leak",
                    "Leak",
                ),
            },
            {
                "code": "observed_at",
                "datatype": "datetime",
                "required": False,
                "description": "When did you see it?",
            },
        ],
    },
    {
        "source": "Other",
        "code": "other",
        "name": "Other request",
        "group": "Other",
        "department": "ITA",
        "sla_hours": 120,
        "priority": "normal",
        "keywords": ["other", "general", "question"],
        "description": "Anything not covered by another category; 311 sends it on.",
        "notice": None,
        "attributes": [
            {
                "code": "details",
                "datatype": "text",
                "required": True,
                "description": "Describe the problem",
            },
        ],
    },
]
