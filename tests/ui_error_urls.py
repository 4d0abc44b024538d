"""The standalone portal's URLs plus one view that fails, to see the branded 500 page through the real stack."""

from django.urls import path

from portal.urls import handler403, handler404, handler500  # noqa: F401
from portal.urls import urlpatterns as portal_urlpatterns


def boom(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("boom/", boom), *portal_urlpatterns]
