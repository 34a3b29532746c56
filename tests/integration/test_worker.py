"""The retirement task executed by a real Celery worker through the real broker."""

from datetime import timedelta

import pytest

from arenasite import clock
from providers.lifecycle import Action, transition
from providers.models import ArenaModel, LifecycleEvent

from ..conftest import make_model
from .conftest import wait_for

pytestmark = pytest.mark.worker


def test_a_worker_carries_out_a_due_retirement(provider_a, member_a, celery_worker_process):
    model = make_model(provider_a, ArenaModel.Status.LISTED)
    transition(model_id=model.pk, action=Action.REQUEST_RETIREMENT, actor=member_a, reason="superseded")
    # The window has since passed: move the dates back instead of the worker's clock.
    past = clock.now() - timedelta(days=15)
    ArenaModel.objects.filter(pk=model.pk).update(listed_at=past, retire_after=past + timedelta(days=14))
    untouched = make_model(provider_a, ArenaModel.Status.LISTED, is_demo=True)
    transition(model_id=untouched.pk, action=Action.RETIRE, actor=None, reason="later")

    celery_worker_process("providers.tasks.carry_out_due_transitions")

    assert wait_for(lambda: ArenaModel.objects.get(pk=model.pk).status == ArenaModel.Status.RETIRED), (
        "the worker did not retire the model in time"
    )
    model.refresh_from_db()
    event = model.events.last()
    assert (event.action, event.kind, event.actor, event.reason) == ("retire", "done", None, "superseded")
    untouched.refresh_from_db()
    assert untouched.status == ArenaModel.Status.LISTED, "a retirement not yet due stays scheduled"

    # Sent again, the task finds nothing due and writes nothing.
    events = LifecycleEvent.objects.count()
    celery_worker_process("providers.tasks.carry_out_due_transitions")
    celery_worker_process("providers.tasks.check_endpoints")
    assert wait_for(lambda: ArenaModel.objects.get(pk=untouched.pk).endpoint_last_checked_at is not None)
    assert LifecycleEvent.objects.count() == events
