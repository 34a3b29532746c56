from django.urls import path

from . import views

app_name = "releases"
urlpatterns = [
    path("", views.data_page, name="data"),
    path("releases/<int:release_id>/<str:name>", views.release_file, name="file"),
]
