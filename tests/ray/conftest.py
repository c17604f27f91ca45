"""The Ray group: workers placed as Ray actors (run apart: ``pytest -m ray -p no:randomly -n 0``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import snakepit

# Ray's own modules warn at import and at shutdown about things that are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def actors_of(pool: snakepit.Pool) -> list[Any]:
    """The actor handles a Ray-placed pool holds now, one per live worker."""
    placements: Any = pool._placements
    return list(placements.actors.values())


def is_dead(actor: Any) -> bool:
    """True when Ray says the actor is gone (a call on it fails with RayActorError)."""
    import ray

    try:
        ray.get(actor.wait.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        return True
    return False
