"""Demo data: providers, models in every lifecycle state, a staff user and a provider user.

Idempotent: running it again changes nothing that is already there.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from arenasite import clock
from providers.lifecycle import MOVES, Action
from providers.models import ArenaModel, LifecycleEvent, Membership, Provider

STAFF_EMAIL, STAFF_PASSWORD = "staff@arenasite.example", "arena-staff-demo"
PROVIDER_EMAIL, PROVIDER_PASSWORD = "provider@openlab.example", "arena-provider-demo"

PROVIDERS = [
    ("Open Lab", "open-lab", "https://openlab.example"),
    ("Acme AI", "acme-ai", "https://acme.example"),
    ("Stealth Labs", "stealth-labs", "https://stealth.example"),
]

A = ArenaModel.AccessKind
# name, provider slug, access kind, licence, the actions it went through, days ago it started, votes
MODELS = [
    ("open-lab-7b-chat", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", ["submit", "admit", "publish"], 60, 4200),
    ("open-lab-13b-chat", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", ["submit", "admit", "publish"], 20, 2600),
    ("open-lab-70b-preview", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", ["submit", "admit"], 6, 1450),
    ("open-lab-3b-draft", "open-lab", A.OPEN_WEIGHTS, "Apache-2.0", [], 1, 0),
    ("acme-gpt-large", "acme-ai", A.PUBLIC_API, "Proprietary", ["submit", "admit", "publish"], 12, 3100),
    ("acme-gpt-mini", "acme-ai", A.PUBLIC_API, "Proprietary", ["submit", "admit"], 4, 320),
    ("acme-assistant", "acme-ai", A.PUBLIC_SERVICE, "Proprietary", ["submit"], 2, 0),
    ("acme-gpt-legacy", "acme-ai", A.PUBLIC_API, "Proprietary", ["submit", "admit", "publish", "retire"], 120, 9800),
    ("acme-gpt-experimental", "acme-ai", A.PUBLIC_API, "Proprietary", ["submit", "admit", "withdraw"], 30, 700),
    ("stealth-one", "stealth-labs", A.PRIVATE, "", ["submit"], 3, 0),
    ("stealth-zero", "stealth-labs", A.PRIVATE, "", ["submit", "reject"], 15, 0),
]

REASONS = {
    "reject": "Private model: only models third parties can reach may be admitted.",
    "withdraw": "Provider pulled out during initial rating.",
    "retire": "Superseded by a newer version; offered for retirement after its listing window.",
}


class Command(BaseCommand):
    help = "Load demo providers, models and users (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        staff, created = User.objects.get_or_create(
            username=STAFF_EMAIL, defaults={"email": STAFF_EMAIL, "is_staff": True, "is_superuser": True}
        )
        if created:
            staff.set_password(STAFF_PASSWORD)
            staff.save()
        member, created = User.objects.get_or_create(username=PROVIDER_EMAIL, defaults={"email": PROVIDER_EMAIL})
        if created:
            member.set_password(PROVIDER_PASSWORD)
            member.save()

        providers = {}
        for name, slug, website in PROVIDERS:
            providers[slug], _ = Provider.objects.get_or_create(
                slug=slug, defaults={"name": name, "website": website, "contact_email": f"arena@{slug}.example"}
            )
        Membership.objects.get_or_create(
            provider=providers["open-lab"], user=member, defaults={"role": Membership.Role.ADMIN}
        )

        added = 0
        for name, slug, access, licence, path, days_ago, votes in MODELS:
            if ArenaModel.objects.filter(name=name).exists():
                continue
            model = ArenaModel.objects.create(
                provider=providers[slug],
                name=name,
                access_kind=access,
                licence=licence,
                description=f"Demo model from {providers[slug].name}.",
                is_demo=True,
                votes_counted=votes,
                heads_up_requested=name == "acme-gpt-large",
            )
            _replay(model, path, start=clock.now() - timedelta(days=days_ago), staff=staff, member=member)
            added += 1
        self.stdout.write(f"Demo data ready ({added} model(s) added).")
        self.stdout.write(f"  staff login:    {STAFF_EMAIL} / {STAFF_PASSWORD}")
        self.stdout.write(f"  provider login: {PROVIDER_EMAIL} / {PROVIDER_PASSWORD} (Open Lab)")


_DATE_FIELDS = {"submit": "submitted_at", "admit": "admitted_at", "publish": "listed_at", "retire": "retired_at"}


def _replay(model: ArenaModel, path: list[str], *, start, staff, member) -> None:
    """Write a believable back-dated history. Demo only: real transitions go through lifecycle."""
    when = start
    for step, action in enumerate(path):
        when = start + timedelta(days=step * 2 if action != "retire" else 40)
        target = MOVES[action][1]
        LifecycleEvent.objects.create(
            arena_model=model,
            action=action,
            from_status=model.status,
            to_status=target,
            actor=member if action in (Action.SUBMIT, Action.WITHDRAW) else staff,
            reason=REASONS.get(action, ""),
            effective_at=when,
            created_at=when,
        )
        model.status = target
        if action in _DATE_FIELDS:
            setattr(model, _DATE_FIELDS[action], when)
    model.status_changed_at = when
    model.save()
