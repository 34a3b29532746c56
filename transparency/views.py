from django.conf import settings
from django.shortcuts import render

from arenasite import clock
from leaderboard import plotly_js

from . import plots, selectors


def transparency(request):
    """Per provider and day: served against predicted battle shares, variants tested, early data
    received (counts only); the retirements by rule and the policy changes log."""
    summaries = selectors.provider_summaries(clock.now().date())
    context = {
        "summaries": summaries,
        "figures": plots.share_figures(summaries),
        "days": selectors.DAYS,
        "retirements": selectors.retirements_by_rule(),
        "policy_changes": selectors.policy_changes(),
        "plotly_js_url": plotly_js.url(),
        "cap": settings.ARENA_INITIAL_RATING_CAP,
        "delay_days": settings.ARENA_RETRACTION_DELAY_DAYS,
        "hidden_label": selectors.HIDDEN_LABEL,
    }
    return render(request, "transparency/index.html", context)
