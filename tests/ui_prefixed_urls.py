"""Goldpath mounted under a prefix, with its branded error handlers, as a host would."""

from django.urls import include, path

urlpatterns = [path("portal/goldpath/", include("catalog.urls"))]

handler403 = "catalog.views.errors.permission_denied"
handler404 = "catalog.views.errors.page_not_found"
handler500 = "catalog.views.errors.server_error"
