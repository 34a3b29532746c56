from django.urls import path

from . import views

app_name = "leaderboard"
urlpatterns = [
    path("", views.leaderboard, name="index"),
    path("plots/", views.leaderboard_plots, name="plots"),
    path("plotly-<slug:fingerprint>.min.js", views.plotly_js, name="plotly-js"),
]
