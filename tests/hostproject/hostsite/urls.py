from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/host/ping/", views.HostPing.as_view()),
    path("goldpath/", include("catalog.urls")),
]
