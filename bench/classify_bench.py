"""Benchmark of the category suggestion: top-1 and top-3 accuracy on held-out demo history,
beside the majority-class baseline, and the training time.

Usage (a scratch embedded cluster; nothing else is touched)::

    env -u DATABASE_URL VAR_DIR=/tmp/classifybench/var .venv/bin/python bench/classify_bench.py

The demo city is loaded first if it is not there (``civicpin demo load``). Its requests
with a description, in suggestable categories (``routing.classify.labelled_history``),
oldest first, are split by time: the classifier (``routing.classify.make_pipeline``) is
trained on the older part and scored on the newest ``--holdout`` share, as it is used on
tomorrow's requests. The reference beside it is always guessing the category most common
in the older part (the majority baseline), on the same held-out requests.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intake.demo import load_demo  # noqa: E402
from routing import classify  # noqa: E402
from spatial.db import migrate  # noqa: E402
from spatial.models import Jurisdiction, Service  # noqa: E402
from webmap.cli import Runtime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--city", default="los-angeles", help="The demo city's slug.")
    parser.add_argument("--holdout", type=float, default=classify.HOLDOUT_SHARE)
    args = parser.parse_args()

    runtime = Runtime()
    migrate(runtime.engine())  # a no-op when the schema is current
    sessions = runtime.sessions()
    started = time.perf_counter()
    loaded = load_demo(sessions)
    if loaded["created"]:
        print(f"demo loaded in {time.perf_counter() - started:.1f} s")
    with sessions() as session:
        city = session.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == args.city))
        if city is None:
            sys.exit(f"no city {args.city}")
        texts, labels = classify.labelled_history(session, city)
        names = {sid: name for sid, name in session.execute(sa.select(Service.id, Service.name))}
    evaluation, _ = classify.evaluate(texts, labels, holdout_share=args.holdout)
    cut = len(texts) - max(1, int(len(texts) * args.holdout))
    print(
        f"city {args.city}: {len(texts)} described requests in {evaluation.categories} categories"
    )
    print(f"  train (older): {cut}; held out (newer): {len(texts) - cut}")
    print(
        "  held-out categories: "
        + ", ".join(f"{names[c]} {n}" for c, n in Counter(labels[cut:]).most_common())
    )
    print(f"  top-1 accuracy      {evaluation.top1:6.1%}")
    print(f"  top-3 accuracy      {evaluation.top3:6.1%}")
    print(f"  majority baseline   {evaluation.baseline:6.1%}")
    print(f"  training time       {evaluation.train_seconds * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
