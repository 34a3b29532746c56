from django.urls import path

from . import views

app_name = "battles"
urlpatterns = [
    path("", views.arena_page, name="arena"),
    path("side-by-side/", views.side_by_side_page, name="side-by-side"),
    path("battles/<str:battle_id>/", views.battle_page, name="battle"),
    path("battles/<str:battle_id>/turns/", views.battle_turn, name="turn"),
    path("battles/<str:battle_id>/vote/", views.battle_vote, name="vote"),
    path("battles/<str:battle_id>/stop/", views.battle_stop, name="stop"),
    path("battles/<str:battle_id>/regenerate/", views.battle_regenerate, name="regenerate"),
    path("battles/<str:battle_id>/share/", views.battle_share, name="share"),
    path("battles/<str:battle_id>/unshare/", views.battle_unshare, name="unshare"),
    path("history/", views.history_page, name="history"),
    path("shared/<str:token>/", views.shared_page, name="shared"),
]
