from django.shortcuts import render

from .models import RatingRun
from .selectors import board


def leaderboard(request):
    """The public leaderboard of the latest published run."""
    run = RatingRun.objects.latest_published()
    include_retired = request.GET.get("retired") == "1"
    categories, rows, category = [], [], request.GET.get("category", "overall")
    if run is not None:
        categories = sorted(set(run.ratings.values_list("category", flat=True)))
        if category not in categories:
            category = "overall"
        rows = board(run, category, include_retired=include_retired)
    context = {
        "run": run,
        "rows": rows,
        "category": category,
        "categories": categories,
        "include_retired": include_retired,
    }
    return render(request, "leaderboard/index.html", context)
