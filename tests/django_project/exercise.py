"""Drive a DjangoProjection's target methods directly, as the projector does, for tests/test_django.py.

``python exercise.py checkpoint``: transaction/load/save, a rollback, reset() and a missing clear().
``python exercise.py turns N``: N batches, each reading the checkpoint, adding one to a StepStat and
saving the checkpoint with one more event; two of these at once must both finish, and count 2N.
Prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testsite.settings")

import django  # noqa: E402

django.setup()

from django.db.models import F  # noqa: E402
from uploader.models import StepStat  # noqa: E402
from uploader.warmup_projections import StepStats  # noqa: E402

from warmup.contrib.django import DjangoProjection  # noqa: E402
from warmup.projection import Checkpoint  # noqa: E402


class NoClear(DjangoProjection):
    name = "no_clear"


class Boom(Exception):
    pass


def checkpoint() -> dict[str, object]:
    seen: dict[str, object] = {}
    p = StepStats()
    p.setup()
    with p.transaction():
        seen["first"] = p.load_checkpoint()
        StepStat.objects.create(action="goto", ok=1)
        p.save_checkpoint(Checkpoint(name=p.name, version=1, position=2**40, fingerprint="f", log="/l",
                                     events_applied=3, last_event_id="e3", last_event_ts="t3"))
    try:
        with p.transaction():
            StepStat.objects.create(action="click", ok=1)
            p.save_checkpoint(Checkpoint(name=p.name, version=1, position=2**41, events_applied=4))
            raise Boom
    except Boom:
        pass
    with p.transaction():
        cp = p.load_checkpoint()
        seen["after_rollback"] = cp.__dict__ if cp else None
        seen["stats"] = sorted(StepStat.objects.values_list("action", flat=True))
    with p.transaction():
        p.reset()
        seen["after_reset"] = (p.load_checkpoint(), StepStat.objects.count())
    try:
        with NoClear().transaction():
            NoClear().reset()
    except NotImplementedError as exc:
        seen["no_clear"] = str(exc)
    seen["target"] = p.describe_target()
    p.close()
    return {k: (repr(v) if k in ("first", "after_reset") else v) for k, v in seen.items()}


def turns(n: int) -> dict[str, object]:
    p = StepStats()
    p.setup()
    for _ in range(n):
        with p.transaction():
            cp = p.load_checkpoint() or Checkpoint(name=p.name, version=p.version)
            stat, _ = StepStat.objects.get_or_create(action="turns")
            StepStat.objects.filter(pk=stat.pk).update(ok=F("ok") + 1)
            cp.events_applied += 1
            cp.position += 1
            p.save_checkpoint(cp)
    p.close()
    return {"done": n}


if __name__ == "__main__":
    what = sys.argv[1]
    result = checkpoint() if what == "checkpoint" else turns(int(sys.argv[2]))
    print(json.dumps(result))
