"""`/api/v1/backstage/entities/`: the catalog for a Backstage entity provider (JSON) or URL location (YAML)."""

from __future__ import annotations

import yaml
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..backstage import catalog_entities
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES


class BackstageEntitiesView(GoldpathAPI, APIView):
    parser_classes = PARSER_CLASSES

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "output", str, enum=["json", "yaml"], description="yaml: a multi-document catalog-info file"
            )
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response | HttpResponse:
        entities = catalog_entities()
        if request.query_params.get("output") == "yaml":
            body = yaml.safe_dump_all(entities, sort_keys=False, allow_unicode=True)
            return HttpResponse(body, content_type="application/yaml; charset=utf-8")
        return Response({"items": entities, "totalItems": len(entities)})
