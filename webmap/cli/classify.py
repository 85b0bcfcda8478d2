"""``civicpin categories train``: learn a city's category suggestions from its history.

The command belongs to the ``categories`` group; the classifier is
:mod:`routing.classify`. The worker retrains every city weekly (``retrain_due``).
"""

from __future__ import annotations

import click

from webmap.cli import Runtime, pass_runtime
from webmap.cli.categories import CITY_OPTION, _city, categories


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@categories.command("train")
@CITY_OPTION
@pass_runtime
def categories_train(rt: Runtime, city_slug: str | None) -> None:
    """Train the category suggestion on the city's requests that have a description.

    Prints how many requests and categories it learnt from, and its top-1 and top-3
    accuracy on the newest fifth of them (held out) beside always guessing the most
    common category.
    """
    from routing import classify

    with rt.sessions().begin() as session:
        target = _city(session, rt, city_slug)
        row = classify.train(session, target)
        line = (
            f"trained the category suggestion of {target.slug}: {row.requests} requests, "
            f"{row.categories} categories; held out: top-1 {_percent(row.top1)}, "
            f"top-3 {_percent(row.top3)}, baseline {_percent(row.baseline)}"
        )
    click.echo(line)
