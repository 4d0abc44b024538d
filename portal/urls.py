"""The standalone host: Goldpath at the site root, Django admin, and the sign-in pages."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("catalog.urls")),
]

handler403 = "catalog.views.errors.permission_denied"
handler404 = "catalog.views.errors.page_not_found"
handler500 = "catalog.views.errors.server_error"
