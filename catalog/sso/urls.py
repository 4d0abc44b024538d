"""SSO URLs, included by catalog.urls under `sso/` (names in the `goldpath` namespace)."""

from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.SsoLoginView.as_view(), name="sso-login"),
    path("callback/", views.SsoCallbackView.as_view(), name="sso-callback"),
    path("mappings/", views.mapping_list, name="sso-mappings"),
    path("mappings/<int:pk>/edit/", views.mapping_edit, name="sso-mapping-edit"),
    path("mappings/<int:pk>/delete/", views.mapping_delete, name="sso-mapping-delete"),
]
