from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from providers.access import may_transition
from providers.lifecycle import Action, TransitionRefused, transition
from providers.models import ArenaModel


class Command(BaseCommand):
    help = "Move a model through its lifecycle under the same rules as admin and the API."

    def add_arguments(self, parser):
        parser.add_argument("model", help="public name or id of the model")
        parser.add_argument("action", help=f"one of: {', '.join(Action.values)}")
        parser.add_argument("--reason", default="", help="kept in the lifecycle log")
        parser.add_argument("--by", dest="by", help="username or email of the person acting (default: the system)")

    def handle(self, *args, model, action, reason, by, **options):
        if action not in Action.values:
            raise CommandError(f"Unknown action {action!r}; known: {', '.join(Action.values)}.")
        arena_model = self._find_model(model)
        actor = self._find_user(by) if by else None
        if actor is not None and not may_transition(actor, arena_model, action):
            raise CommandError(f"{actor.get_username()} may not '{action}' {arena_model.name}.")
        try:
            outcome = transition(model_id=arena_model.pk, action=action, actor=actor, reason=reason)
        except TransitionRefused as exc:
            raise CommandError(f"Refused ({exc.rule}): {exc.detail}") from None
        self.stdout.write(outcome.describe())

    def _find_model(self, ref: str) -> ArenaModel:
        query = Q(name=ref)
        if ref.isdigit():
            query |= Q(pk=int(ref))
        matches = list(ArenaModel.objects.filter(query)[:2])
        if len(matches) != 1:
            raise CommandError(f"No single model named or numbered {ref!r}.")
        return matches[0]

    def _find_user(self, ref: str):
        User = get_user_model()
        user = User.objects.filter(Q(username=ref) | Q(email__iexact=ref)).first()
        if user is None:
            raise CommandError(f"No user {ref!r}.")
        return user
