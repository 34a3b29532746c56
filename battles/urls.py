from django.urls import path

from . import views

app_name = "battles"
urlpatterns = [
    path("", views.arena_page, name="arena"),
    path("side-by-side/", views.side_by_side_page, name="side-by-side"),
    path("battles/<str:battle_id>/", views.battle_page, name="battle"),
    path("battles/<str:battle_id>/answers/", views.battle_fragment, name="fragment"),
    path("battles/<str:battle_id>/turns/", views.battle_turn, name="turn"),
    path("battles/<str:battle_id>/vote/", views.battle_vote, name="vote"),
]
