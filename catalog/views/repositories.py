"""Repositories page: everyone sees the repositories of their teams; platform engineers and admins manage them.

They register, edit and delete them through the same services as the API. The credential is a password field,
never rendered back (only its last 4 characters).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from ..forms import add_domain_errors
from ..models import DataClassification, Repository, Team
from ..selectors import repositories_for
from ..services import repositories as repo_services
from ..services.errors import DomainError, NotPermitted, TransitionNotAllowed
from .rendering import render

DENIED = "Only platform engineers and admins register and change repositories."


class RepositoryForm(forms.Form):
    """Register or edit a repository; the services check the URL, teams and branch rules."""

    slug = forms.CharField(
        max_length=50,
        help_text="Agent runs and workspaces name the repository by this: lowercase letters, digits, hyphens.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(max_length=200)
    url = forms.CharField(
        max_length=1000,
        label="Clone URL or path",
        help_text="https://host/path or ssh://user@host/path (no password), or an absolute path to a local "
        "repository under the allowed folders.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.order_by("slug"),
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        help_text="Members of these teams may use the repository.",
    )
    data_classification = forms.ChoiceField(
        choices=DataClassification.choices, initial=DataClassification.INTERNAL, label="Data classification"
    )
    default_branch = forms.CharField(max_length=250, initial="main", label="Default branch")
    credential = forms.CharField(
        max_length=repo_services.MAX_CREDENTIAL,
        required=False,
        strip=False,
        help_text="Token or SSH private key for cloning and pushing; stored encrypted, never shown again.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_credential = forms.BooleanField(required=False, label="Remove the stored credential")

    def __init__(self, *args: Any, editing: Repository | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["teams"].label_from_instance = lambda team: f"{team.name} ({team.slug})"
        if editing is None:
            del self.fields["clear_credential"]
        else:
            self.fields["slug"].disabled = True
            self.fields["credential"].help_text = "Leave empty to keep the stored credential; a value replaces it."

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["teams"] = [t.slug for t in data["teams"]]
        clear = data.pop("clear_credential", False)
        if "clear_credential" in self.fields:
            data.pop("slug", None)
            data["credential"] = "" if clear else (data["credential"] or None)
        else:
            data["credential"] = data["credential"] or None
        return data


def _managers_only(request) -> None:
    if not repo_services.can_manage_repositories(request.user):
        raise PermissionDenied(DENIED)


def _visible(request, slug: str) -> Repository:
    repository = repositories_for(request.user).filter(slug=slug).first()
    if repository is None:
        raise Http404("No such repository.")
    return repository


@login_required
@require_http_methods(["GET", "POST"])
def repository_list(request):
    can_manage = repo_services.can_manage_repositories(request.user)
    form = RepositoryForm() if can_manage else None
    if request.method == "POST":
        _managers_only(request)
        form = RepositoryForm(request.POST)
        if form.is_valid():
            try:
                repository = repo_services.repository_create(actor=request.user, **form.service_kwargs())
            except NotPermitted as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                messages.success(request, f"Registered repository {repository.slug}.")
                return redirect("goldpath:repository-list")
    repositories = repositories_for(request.user).select_related("created_by")
    return render(
        request,
        "catalog/repositories.html",
        {"repositories": repositories, "form": form, "can_manage": can_manage},
        status=400 if form is not None and form.is_bound else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def repository_edit(request, slug: str):
    repository = _visible(request, slug)
    _managers_only(request)
    if request.method == "POST":
        form = RepositoryForm(request.POST, editing=repository, initial={"slug": repository.slug})
        if form.is_valid():
            try:
                repo_services.repository_update(repository=repository, actor=request.user, **form.service_kwargs())
            except NotPermitted as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                add_domain_errors(form, exc)
            else:
                messages.success(request, f"Saved repository {repository.slug}.")
                return redirect("goldpath:repository-list")
    else:
        form = RepositoryForm(
            editing=repository,
            initial={
                "slug": repository.slug,
                "name": repository.name,
                "url": repository.url,
                "teams": list(repository.teams.all()),
                "data_classification": repository.data_classification,
                "default_branch": repository.default_branch,
            },
        )
    return render(
        request,
        "catalog/repository_edit.html",
        {"repository": repository, "form": form},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_POST
def repository_delete(request, slug: str):
    repository = _visible(request, slug)
    _managers_only(request)
    try:
        repo_services.repository_delete(repository=repository, actor=request.user)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except TransitionNotAllowed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Deleted repository {slug}.")
    return redirect("goldpath:repository-list")
