"""The public arena pages: ask, read two answers as they arrive, vote, see who it was.

Plain forms that post and redirect; while answers arrive, the page follows the battle's
event stream (battles/static/battles/battle.js, GET /api/v1/battles/{id}/stream/) and,
without JavaScript, refreshes itself. The rules live in battles/arena.py, shared with the
JSON API.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from . import arena, challenge
from .models import Battle, Winner
from .voters import forget_new_voter, judge_for, voter_for

# The page's words when the browser's proof of work is missing or failed (the widget solves it).
CHALLENGE_PAGE_MESSAGE = (
    "Your browser's proof-of-work check did not come through. Wait until the check below says it is done "
    "(it needs JavaScript), then send again."
)


class PromptForm(forms.Form):
    prompt = forms.CharField(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Ask anything…", "autofocus": True}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prompt"].widget.attrs["maxlength"] = settings.ARENA_MAX_PROMPT_CHARS

    def clean_prompt(self):
        try:
            return arena.clean_prompt(self.cleaned_data["prompt"])
        except arena.InvalidInput as exc:
            raise forms.ValidationError(exc.message) from exc


class SideBySideForm(PromptForm):
    model_a = forms.ChoiceField(label="Model A")
    model_b = forms.ChoiceField(label="Model B")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = [(name, name) for name in arena.side_by_side_models().values_list("name", flat=True)]
        self.fields["model_a"].choices = self.fields["model_b"].choices = [("", "Choose a model"), *names]

    def clean(self):
        data = super().clean()
        if data.get("model_a") and data.get("model_b"):
            try:
                data["models"] = arena.pick_by_names(data["model_a"], data["model_b"])
            except arena.InvalidInput as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


@require_http_methods(["GET", "HEAD", "POST"])
def arena_page(request):
    """Ask a question; two anonymous models answer it."""
    form = PromptForm(request.POST or None)
    context = {"form": form, "max_turns": settings.ARENA_MAX_TURNS}
    return _start_page(request, form, "battles/arena.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
def side_by_side_page(request):
    """Pick two listed models by name and compare them; these votes never count."""
    form = SideBySideForm(request.POST or None)
    return _start_page(request, form, "battles/side_by_side.html", {"form": form})


def _start_page(request, form: PromptForm, template: str, context: dict):
    """The page that starts a battle: on a valid post, the proof of work, the limits, then the
    battle page; otherwise the form again, with why (and Retry-After past a limit)."""
    status, headers = 200, None
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                challenge.spend(request, request.POST.get("altcha"))
                models = form.cleaned_data.get("models")  # side by side: the two picked
                battle = arena.start_battle(prompt=form.cleaned_data["prompt"], voter=voter_for(request), models=models)
            except challenge.ChallengeRequired:
                form.add_error(None, CHALLENGE_PAGE_MESSAGE)
                status = 403
            except arena.BattleRefused as exc:
                forget_new_voter(request)
                form.add_error(None, exc.message)
                status = exc.status_code
                headers = _retry_after(exc)
            else:
                return redirect("battles:battle", battle_id=battle.question_id)
    return _render(request, template, {**context, "challenge": challenge.needed(request)}, status, headers)


def _retry_after(exc: arena.BattleRefused) -> dict | None:
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, arena.TooManyBattles) else None


def _render(request, template: str, context: dict, status: int, headers: dict | None):
    response = render(request, template, context, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _battle_or_404(request, battle_id: str) -> Battle:
    try:
        return arena.battle_of(battle_id, judge_for(request, create=False))
    except arena.BattleNotFound as exc:
        raise Http404(exc.message) from exc


def _battle_context(battle: Battle, **extra) -> dict:
    vote = getattr(battle, "vote", None)
    names = arena.revealed_names(battle) if (vote is not None or not battle.anony) else None
    turns = [
        {"prompt": asked["content"], "answer_a": answer_a["content"], "answer_b": answer_b["content"]}
        for asked, answer_a, answer_b in zip(
            battle.conversation_a[0::2], battle.conversation_a[1::2], battle.conversation_b[1::2], strict=True
        )
    ]
    return {
        "battle": battle,
        "turns": turns,
        "vote": vote,
        "names": names,
        "winners": Winner.choices,
        "can_continue": battle.complete
        and vote is None
        and not battle.stopped
        and battle.turn < settings.ARENA_MAX_TURNS,
        "turn_form": PromptForm(),
        "max_turns": settings.ARENA_MAX_TURNS,
        "max_prompt_chars": settings.ARENA_MAX_PROMPT_CHARS,
        "first_prompt": turns[0]["prompt"] if turns else "",
        **extra,
    }


@require_safe
def battle_page(request, battle_id: str):
    battle = _battle_or_404(request, battle_id)
    return render(request, "battles/battle.html", _battle_context(battle))


@require_POST
def battle_turn(request, battle_id: str):
    battle = _battle_or_404(request, battle_id)
    form = PromptForm(request.POST)
    status, headers = 400, None
    if form.is_valid():
        try:
            arena.add_turn(battle, form.cleaned_data["prompt"], voter_for(request, create=False))
        except arena.BattleRefused as exc:
            form.add_error(None, exc.message)
            status = exc.status_code
            headers = _retry_after(exc)
        else:
            # To the new turn: after several turns it is below the fold.
            return redirect(reverse("battles:battle", args=[battle.question_id]) + f"#turn-{battle.turn + 1}")
    context = _battle_context(battle, turn_form=form)
    return _render(request, "battles/battle.html", context, status, headers)


@require_POST
def battle_vote(request, battle_id: str):
    battle = _battle_or_404(request, battle_id)
    try:
        arena.cast_vote(battle, request.POST.get("winner"), voter_for(request, create=False))
    except arena.BattleRefused as exc:
        context = _battle_context(battle, vote_error=exc.message)
        return render(request, "battles/battle.html", context, status=exc.status_code)
    return redirect(reverse("battles:battle", args=[battle.question_id]) + "#reveal")


def _battle_action(request, battle_id: str, action) -> HttpResponse:
    """A form's action on the voter's battle, then back to its page; a refusal renders the page
    with the reason and its status (409, or 429 with Retry-After)."""
    battle = _battle_or_404(request, battle_id)
    try:
        action(battle)
    except arena.BattleRefused as exc:
        battle = _battle_or_404(request, battle_id)
        context = _battle_context(battle, vote_error=exc.message)
        return _render(request, "battles/battle.html", context, exc.status_code, _retry_after(exc))
    return redirect(reverse("battles:battle", args=[battle.question_id]) + f"#turn-{battle.turn}")


@require_POST
def battle_stop(request, battle_id: str):
    """Stop both answers of the latest turn; what was written is kept."""
    return _battle_action(request, battle_id, arena.stop_answers)


@require_POST
def battle_regenerate(request, battle_id: str):
    """Both models answer the latest turn again (before the vote)."""
    voter = voter_for(request, create=False)
    return _battle_action(request, battle_id, lambda battle: arena.regenerate(battle, voter))


@require_POST
def battle_share(request, battle_id: str):
    """Make a public link to the voter's voted battle, shown on the history page."""
    battle = _battle_or_404(request, battle_id)
    try:
        arena.battle_share(battle)
    except arena.BattleRefused as exc:
        messages.error(request, exc.message)
    return redirect(reverse("battles:history") + f"#battle-{battle.question_id}")


@require_POST
def battle_unshare(request, battle_id: str):
    """Revoke the battle's public link."""
    battle = _battle_or_404(request, battle_id)
    arena.battle_unshare(battle)
    return redirect(reverse("battles:history") + f"#battle-{battle.question_id}")


@require_safe
def history_page(request):
    """The voter's own battles, newest first: an account's battles, or a visitor's from this
    browser session (asked to sign in to keep them)."""
    battles = arena.battle_history(judge_for(request, create=False))
    rows = []
    for battle in battles:
        vote = getattr(battle, "vote", None)
        prompt = next((m["content"] for m in battle.conversation_a if m["role"] == "user"), "")
        rows.append(
            {
                "battle": battle,
                "prompt": prompt,
                "vote": vote,
                "names": arena.revealed_names(battle) if (vote is not None or not battle.anony) else None,
                "share_url": request.build_absolute_uri(reverse("battles:shared", args=[battle.share_token]))
                if battle.share_token and vote is not None
                else None,
            }
        )
    context = {"rows": rows, "signed_in": request.user.is_authenticated}
    response = render(request, "battles/history.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
def shared_page(request, token: str):
    """A battle its voter shared: the conversation, the vote and the revealed names. Nothing
    that identifies the voter is shown; the link stops working when the voter revokes it."""
    try:
        battle = arena.shared_battle(token)
    except arena.BattleNotFound as exc:
        raise Http404(exc.message) from exc
    context = _battle_context(battle)
    response = render(request, "battles/shared.html", context)
    # Whoever holds the link may read it, but it is nobody's to index or keep once revoked.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response
