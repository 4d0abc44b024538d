"""Repositories registered by platform engineers for some teams; agent runs and workspaces name one by slug."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .teams import SLUG_VALIDATOR, Team
from .tools import DataClassification


class Repository(models.Model):
    """A git repository (clone URL or absolute local path) usable by its teams, with an optional credential.

    The credential is Fernet-encrypted (catalog.agents.crypto) and only ever decrypted in workers.
    """

    slug = models.SlugField(max_length=50, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=200)
    url = models.CharField(max_length=1000, help_text="a https:// or ssh:// clone URL, or an absolute local path")
    teams = models.ManyToManyField(Team, related_name="repositories", blank=True)
    data_classification = models.CharField(
        max_length=20, choices=DataClassification.choices, default=DataClassification.INTERNAL
    )
    default_branch = models.CharField(max_length=250, default="main")
    credential_ciphertext = models.TextField(blank=True)
    credential_last4 = models.CharField(max_length=4, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.slug

    @property
    def is_local(self) -> bool:
        return self.url.startswith("/")

    @property
    def has_credential(self) -> bool:
        return bool(self.credential_ciphertext)

    def credential(self) -> str:
        """The decrypted credential, or "" when none is stored."""
        if not self.credential_ciphertext:
            return ""
        from ..agents.crypto import decrypt

        return decrypt(self.credential_ciphertext)
