"""Catalog pages."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from ..models import AITool


@login_required
def tool_list(request):
    tools = AITool.objects.select_related("owner_team").order_by("name")
    return render(request, "catalog/tool_list.html", {"tools": tools})
