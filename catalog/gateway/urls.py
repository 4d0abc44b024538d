"""Model gateway routes (mounted at /gateway/ by catalog.urls): the vendors' own `/v1/...` paths."""

from django.urls import path, re_path

from . import views

app_name = "gateway"

urlpatterns = [
    path("v1/messages", views.messages, name="messages"),
    path("v1/messages/count_tokens", views.count_tokens, name="count-tokens"),
    path("v1/responses", views.responses, name="responses"),
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/models", views.models, name="models"),
    re_path(r"^v1/(?P<rest>.*)$", views.not_found),
]
