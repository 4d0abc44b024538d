"""Goldpath mounted under /gp/, as a host may mount it: links must come from URL reversing."""

from django.urls import include, path

urlpatterns = [path("gp/", include("catalog.urls"))]
