import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import ApiToken, ArenaModel, LifecycleEvent, Membership, Provider

from ..conftest import make_model

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestTransition:
    def test_it_moves_a_model_by_name_or_id(self, provider_a, staff):
        model = make_model(provider_a, ArenaModel.Status.SUBMITTED)
        assert "now initial rating" in run("transition", model.name, "admit", "--reason", "ok", "--by", staff.email)
        model.refresh_from_db()
        assert model.status == ArenaModel.Status.INITIAL_RATING
        assert model.events.last().actor == staff
        run("transition", str(model.pk), "withdraw", "--reason", "pulled out")
        model.refresh_from_db()
        assert model.status == ArenaModel.Status.WITHDRAWN and model.events.last().actor is None

    def test_an_early_retirement_is_reported_as_scheduled(self, provider_a):
        model = make_model(provider_a, ArenaModel.Status.LISTED)
        assert "scheduled for" in run("transition", model.name, "retire", "--reason", "old")

    def test_a_refusal_names_the_rule_and_changes_nothing(self, provider_a, staff):
        model = make_model(provider_a, ArenaModel.Status.SUBMITTED, access_kind="private")
        with pytest.raises(CommandError, match="third_party_access"):
            run("transition", model.name, "admit", "--reason", "x")
        model.refresh_from_db()
        assert model.status == ArenaModel.Status.SUBMITTED

    @pytest.mark.parametrize(
        "args, message",
        [
            (["no-such-model", "admit"], "No single model"),
            (["{name}", "explode"], "Unknown action"),
            (["{name}", "admit", "--by", "nobody@example.com"], "No user"),
        ],
    )
    def test_bad_arguments_are_clear_errors(self, provider_a, args, message):
        model = make_model(provider_a, ArenaModel.Status.SUBMITTED)
        events = LifecycleEvent.objects.count()
        with pytest.raises(CommandError, match=message):
            run("transition", *[a.format(name=model.name) for a in args])
        assert LifecycleEvent.objects.count() == events

    def test_a_provider_member_may_not_use_staff_actions(self, provider_a, member_a):
        model = make_model(provider_a, ArenaModel.Status.SUBMITTED)
        with pytest.raises(CommandError, match="may not"):
            run("transition", model.name, "admit", "--by", member_a.email)


class TestCreateProvider:
    def test_it_creates_a_provider_a_member_and_a_working_token(self, client):
        output = run("create_provider", "Mistral Like", "--member", "ops@ml.example", "--token")
        provider = Provider.objects.get(slug="mistral-like")
        membership = Membership.objects.get(provider=provider)
        assert membership.user.email == "ops@ml.example"
        raw = output.split("API token (shown once): ")[1].strip()
        assert ApiToken.objects.verify(raw).user == membership.user
        assert raw not in str(list(ApiToken.objects.values()))

    def test_a_duplicate_name_is_refused(self, provider_a):
        with pytest.raises(CommandError, match="already exists"):
            run("create_provider", provider_a.name)
        assert Provider.objects.count() == 1

    @pytest.mark.parametrize(
        "args, message",
        [(["X", "--token"], "needs --member"), (["X", "--member", "not-an-email"], "not an email"), (["!!"], "letter")],
    )
    def test_bad_arguments_are_refused_without_side_effects(self, args, message):
        with pytest.raises(CommandError, match=message):
            run("create_provider", *args)
        assert not Provider.objects.exists() and not get_user_model().objects.exists()
