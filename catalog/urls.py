"""Page routes."""

from django.urls import path

from .views import tools

app_name = "catalog"

urlpatterns = [
    path("", tools.tool_list, name="tool-list"),
]
