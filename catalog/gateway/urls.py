"""Model gateway routes (mounted at /gateway/ by catalog.urls)."""

from django.urls import path  # noqa: F401 - the gateway's views are added here

urlpatterns: list = []
