from django.urls import path

from . import views

# A provider's pages sit under providers/<slug>/, apart from the user's own pages, so no
# provider slug (made in admin or by a command too) can shadow them.
app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("new-provider/", views.provider_new, name="provider-new"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("providers/<slug:slug>/", views.dashboard, name="dashboard"),
    path("providers/<slug:slug>/models/new/", views.model_new, name="model-new"),
    path("providers/<slug:slug>/models/<int:pk>/", views.model_detail, name="model"),
    path("providers/<slug:slug>/models/<int:pk>/edit/", views.model_edit, name="model-edit"),
    path("providers/<slug:slug>/models/<int:pk>/test/", views.model_test, name="model-test"),
    path("providers/<slug:slug>/models/<int:pk>/heads-up/", views.model_heads_up, name="model-heads-up"),
    path(
        "providers/<slug:slug>/models/<int:pk>/change/withdraw/",
        views.model_change_withdraw,
        name="model-change-withdraw",
    ),
    path("providers/<slug:slug>/models/<int:pk>/<str:action>/", views.model_transition, name="model-transition"),
    path("providers/<slug:slug>/data/", views.data, name="data"),
    path("providers/<slug:slug>/data/accept/", views.agreement_accept, name="agreement-accept"),
    path("providers/<slug:slug>/data/shares/", views.share_request, name="share-request"),
]
