import re
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.views.decorators.http import require_safe

from arenasite import clock

from . import cards, fairness, plots, registry, selectors
from . import plotly_js as plotly_bundle
from .categories import category_labels
from .models import RatingRun

# The fingerprint is in the URL, so this URL's content never changes: browsers and proxies may keep it.
PLOTLY_JS_CACHE_CONTROL = "public, max-age=31536000, immutable"
ACCEPTS_GZIP = re.compile(r"\bgzip\b")


def leaderboard(request):
    """The public leaderboard of the latest published run.

    `q` searches the models' names, providers and licences: rows that do not match are sent
    hidden, so the page's script can show them again as the search changes, and the search
    works without the script too.
    """
    context = _board_context(request)
    query = request.GET.get("q", "").strip()[:100]
    needle = query.casefold()
    for row in context["rows"]:
        row["search"] = " ".join(str(row[key] or "") for key in ("model", "provider", "licence")).casefold()
        row["hidden"] = bool(needle) and needle not in row["search"]
    context.update(query=query, shown=sum(not row["hidden"] for row in context["rows"]))
    return render(request, "leaderboard/index.html", context)


def leaderboard_plots(request):
    """The plots of the table's category and models, on their own page.

    Apart from the table so the table stays three queries and carries no 1.5 MB script
    for visitors who only want the ranking; the same filters apply to both.
    """
    context = _board_context(request)
    context["figures"] = {}
    if context["run"] is not None:
        rows, category = context["rows"], context["category"]
        history = selectors.rating_history(category, plots.history_model_ids(rows), runs=plots.HISTORY_RUNS)
        context["figures"] = plots.leaderboard_figures(rows, selectors.pair_counts(context["run"], category), history)
    context.update(
        plotly_js_url=plotly_bundle.url(),
        heatmap_models=plots.HEATMAP_MODELS,
        history_models=plots.HISTORY_MODELS,
        history_runs=plots.HISTORY_RUNS,
    )
    return render(request, "leaderboard/plots.html", context)


def _board_context(request) -> dict:
    """The latest published run and the rows the request's filters select: three queries."""
    run = RatingRun.objects.latest_published()
    include_retired = request.GET.get("retired") == "1"
    categories, rows, category = [], [], request.GET.get("category", "overall")
    if run is not None:
        labels = category_labels()
        names = set(run.ratings.values_list("category", flat=True))
        # In the order the categories are defined, overall first; a retired category keeps its name.
        order = {name: position for position, name in enumerate(labels)}
        ordered = sorted(names, key=lambda name: (order.get(name, len(order)), name))
        categories = [{"name": name, "label": labels.get(name, name)} for name in ordered]
        if category not in names:
            category = "overall"
        rows = selectors.board(run, category, include_retired=include_retired)
    # A category, and a model in it, is shown as rated only from a minimum of votes; below it
    # the page says how many more are needed.
    votes = selectors.category_votes(run, category) if run is not None else 0
    category_needs = max(0, settings.ARENA_LEADERBOARD_MIN_CATEGORY_VOTES - votes)
    rows, unrated = selectors.split_rated(rows, min_votes=settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES)
    if category_needs:
        rows, unrated = [], []
    return {
        "run": run,
        "rows": rows,
        "unrated": unrated,
        "category_votes": votes,
        "category_needs": category_needs,
        "min_category_votes": settings.ARENA_LEADERBOARD_MIN_CATEGORY_VOTES,
        "min_model_votes": settings.ARENA_LEADERBOARD_MIN_MODEL_VOTES,
        "category": category,
        "categories": categories,
        "include_retired": include_retired,
        "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
        # Carries the filters across the Table and Plots links.
        "filters_query": urlencode({"category": category, **({"retired": "1"} if include_retired else {})}),
    }


@require_safe
def plotly_js(request, fingerprint: str):
    """plotly.js from the installed plotly package, so the plots need no CDN."""
    if fingerprint != plotly_bundle.fingerprint():
        # A page rendered before an upgrade: send it to the current file, without caching the detour.
        return redirect(plotly_bundle.url())
    use_gzip = bool(ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")))
    # One ETag per encoding: the two bodies differ, and a cache must not swap them.
    etag = f'"{plotly_bundle.fingerprint()}{"-gzip" if use_gzip else ""}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        if use_gzip:
            response = HttpResponse(plotly_bundle.gzipped())
            response["Content-Encoding"] = "gzip"
        else:
            response = FileResponse(plotly_bundle.path().open("rb"))
        response["Content-Type"] = "text/javascript; charset=utf-8"
    response["ETag"] = etag
    response["Cache-Control"] = PLOTLY_JS_CACHE_CONTROL
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


def model_registry(request):
    """Every model that entered the arena and is public: lifecycle, votes, kept rating, why it left."""
    now = clock.now()
    thresholds, _ = fairness.percentile_rule(now=now)
    context = {
        "rows": registry.registry_rows(now),
        "thresholds": sorted(thresholds.values(), key=lambda t: t.access_kind),
        "delay_days": settings.ARENA_RETRACTION_DELAY_DAYS,
        "cap": settings.ARENA_INITIAL_RATING_CAP,
        "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
        "retire_percentile": settings.ARENA_RETIRE_PERCENTILE,
        "retire_min_votes": settings.ARENA_RETIRE_MIN_VOTES,
        "offline_days": settings.ARENA_OFFLINE_RETIREMENT_DAYS,
        "min_listed_days": settings.ARENA_MIN_LISTED_DAYS,
    }
    return render(request, "leaderboard/registry.html", context)


def model_card(request, pk: int):
    """A public model's card: who offers it, on what terms, its lifecycle and its rating over the runs.

    Not found unless the model is public (as on /models/): a model under its codename has no card.
    """
    now = clock.now()
    row = registry.registry_row(pk, now)
    if row is None:
        raise Http404("No public model with this id.")
    run = RatingRun.objects.latest_published()
    history = selectors.model_history(pk, runs=cards.HISTORY_RUNS)
    labels = category_labels()
    categories = []
    if run is not None:
        order = {name: position for position, name in enumerate(labels)}
        categories = sorted(
            selectors.model_categories(run, pk), key=lambda c: (order.get(c["category"], len(order)), c["category"])
        )
        for category in categories:
            category["label"] = labels.get(category["category"], category["category"])
    context = {
        "row": row,
        "model": row.model,
        "run": run,
        "categories": categories,
        "history": history,
        "chart": cards.history_chart(history),
        "history_runs": cards.HISTORY_RUNS,
        "provisional": fairness.is_provisional(row.model),
        "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
    }
    return render(request, "leaderboard/model.html", context)
