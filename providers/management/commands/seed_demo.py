"""Demo data: providers, models in every lifecycle state, a staff user and a provider user,
and a history of votes between the demo models, rated once, so the leaderboard and its
plots show something on a fresh machine.

Idempotent: running it again changes nothing that is already there.
"""

import random
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from arenasite import clock
from battles.models import Battle, BattleStyle, Vote, Winner
from battles.style import conversation_prompt_hash
from leaderboard import services as ratings_services
from leaderboard.models import RatingRun
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
    ("acme-gpt-legacy", "acme-ai", A.PUBLIC_API, "Proprietary", ["submit", "admit", "publish", "retire"], 75, 9800),
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
        for user in (staff, member):
            # The demo logins work at once: their addresses count as confirmed (sign-in asks
            # for a confirmed address, settings.ACCOUNT_EMAIL_VERIFICATION).
            EmailAddress.objects.get_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )

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
        battles = _vote_history()
        if battles and not RatingRun.objects.published().exists():
            transaction.on_commit(lambda: ratings_services.recompute())
        self.stdout.write(f"Demo data ready ({added} model(s), {battles} voted battle(s) added).")
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


# Latent strengths of the demo models (Elo-like), so the history has a believable order.
STRENGTH = {
    "acme-gpt-large": 1120,
    "open-lab-70b-preview": 1100,
    "acme-gpt-legacy": 1040,
    "open-lab-13b-chat": 1010,
    "acme-gpt-experimental": 990,
    "acme-gpt-mini": 960,
    "open-lab-7b-chat": 930,
}
PROMPTS = [
    "Explain how a hash table works.",
    "Write a haiku about the sea.",
    "What is the difference between a list and a tuple in Python?",
    "Plan a three-day trip to Lisbon.",
    "Summarise the causes of the French Revolution.",
    "How do I make sourdough bread?",
    "Give me three ideas for a birthday present for a ten-year-old.",
    "Why is the sky blue?",
]


def _conversation(model: str, prompt: str, rng: random.Random) -> list[dict]:
    """A stand-in answer; some models write longer and with more markdown, as real ones do."""
    verbose = rng.random() < (0.8 if model.startswith("acme") else 0.2)
    lines = [f"Here is my answer to: {prompt}"]
    if verbose:
        lines += ["", "## Overview", ""] + [f"- **Point {k + 1}**: detail {rng.randint(1, 99)}" for k in range(4)]
    lines += ["", " ".join(f"word{rng.randint(1, 500)}" for _ in range(rng.randint(15, 60) * (2 if verbose else 1)))]
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": "\n".join(lines)}]


def _vote_history() -> int:
    """Demo battles and votes between the models that were rated, in proportion to their vote counts."""
    if Battle.objects.filter(question_id__startswith="demo-").exists():
        return 0
    models = {m.name: m for m in ArenaModel.objects.filter(name__in=STRENGTH, is_demo=True)}
    if len(models) < 2:
        return 0
    rng = random.Random(20240501)
    names = sorted(models)
    now = clock.now()
    window = {name: (models[name].admitted_at or now, models[name].retired_at or now) for name in names}

    # Who can have met whom: both admitted and neither retired at the time.
    def overlap(a, b):
        return max(window[a][0], window[b][0]) < min(window[a][1], window[b][1])

    met = {a: [b for b in names if b != a and overlap(a, b)] for a in names}
    # Each model takes part in about as many battles as its demo vote count says: the side
    # still furthest from its count is drawn first.
    remaining = {name: models[name].votes_counted for name in names if met[name]}
    battles, votes = [], []
    while len(remaining) > 1 and sum(remaining.values()) > 0:
        a = rng.choices(list(remaining), weights=list(remaining.values()))[0]
        opponents = [b for b in met[a] if b in remaining]
        if not opponents or remaining[a] <= 0:
            remaining.pop(a)
            continue
        b = rng.choices(opponents, weights=[remaining[o] + 1 for o in opponents])[0]
        remaining[a] -= 1
        remaining[b] = max(0, remaining[b] - 1)
        if rng.random() < 0.5:
            a, b = b, a
        number = len(battles)
        prompt = rng.choice(PROMPTS)
        started, ended = max(window[a][0], window[b][0]), min(window[a][1], window[b][1])
        when = started + (ended - started) * rng.random()
        battle = Battle(
            question_id=f"demo-{number:06d}",
            model_a=models[a],
            model_b=models[b],
            language="English",
            turn=1,
            prompt_chars=len(prompt),
            conversation_a=_conversation(a, prompt, rng),
            conversation_b=_conversation(b, prompt, rng),
            in_release_pool=Battle.pool_for(f"demo-{number:06d}"),
            created_at=when,
        )
        expected = 1 / (1 + 10 ** ((STRENGTH[b] - STRENGTH[a]) / 400))
        roll = rng.random()
        winner = Winner.TIE if roll < 0.25 else Winner.MODEL_A if roll < 0.25 + 0.75 * expected else Winner.MODEL_B
        battles.append(battle)
        votes.append((winner, f"demo-voter-{rng.randint(1, 400)}", when))
    for battle in battles:
        battle.prompt_hash = conversation_prompt_hash(battle.conversation_a)
    Battle.objects.bulk_create(battles, batch_size=1000)
    BattleStyle.store(battles)
    Vote.objects.bulk_create(
        [
            Vote(battle=battle, model_a=battle.model_a, model_b=battle.model_b, winner=w, judge=j, created_at=t)
            for battle, (w, j, t) in zip(battles, votes, strict=True)
        ],
        batch_size=1000,
    )
    return len(battles)
