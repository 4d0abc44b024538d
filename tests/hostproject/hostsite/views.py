"""The host's own pages and API, to show Goldpath sits beside them."""

from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView


def home(request):
    return HttpResponse("Acme developer portal")


class HostPing(APIView):
    """The host's own API view: open under the host's REST_FRAMEWORK defaults."""

    def get(self, request):
        return Response({"host": "acme"})
