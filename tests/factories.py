"""Factories for leaves; richer state is built through services (see conftest helpers)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from catalog.models import AITool, Profile, Team, ToolVersion

PASSWORD = "correct-horse-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):  # noqa: N805
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save()

    @factory.post_generation
    def role(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            role = extracted or "developer"
            Profile.objects.update_or_create(user=obj, defaults={"role": role})
            if role == "admin":
                obj.is_staff = obj.is_superuser = True
                obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    group = factory.LazyAttribute(lambda o: Group.objects.get_or_create(name=f"team:{o.slug}")[0])


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AITool

    slug = factory.Sequence(lambda n: f"tool-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    vendor = "Acme AI"
    kind = "agent"
    risk_tier = "medium"
    max_data_classification = "confidential"
    owner_team = factory.LazyFunction(lambda: TeamFactory(slug="platform"))
    status = "proposed"


class ToolVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolVersion

    tool = factory.SubFactory(ToolFactory)
    version = factory.Sequence(lambda n: f"1.{n}.0")
    launch_command = ["acme", "--prompt", "{prompt}"]
    review_state = "approved"  # a reviewed version, ready to run (the review workflow has its own tests)
