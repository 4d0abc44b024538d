"""Goldpath's API throttles by itself (GOLDPATH["API_THROTTLE_*"]), whatever the host's REST_FRAMEWORK says."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_anonymous_calls_beyond_the_rate_get_429_and_an_empty_rate_turns_it_off(settings):
    settings.GOLDPATH = {**settings.GOLDPATH, "API_THROTTLE_ANON": "3/minute"}
    client = APIClient()  # the public provenance key (a refused call is a 401 before any throttle counts it)
    codes = [client.get("/api/v1/provenance/key/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    settings.GOLDPATH = {**settings.GOLDPATH, "API_THROTTLE_ANON": ""}
    cache.clear()
    assert {client.get("/api/v1/provenance/key/").status_code for _ in range(10)} == {200}


def test_a_signed_in_user_beyond_the_rate_gets_429(settings, api, teams):
    from tests.factories import UserFactory

    settings.GOLDPATH = {**settings.GOLDPATH, "API_THROTTLE_USER": "2/minute"}
    client = api(UserFactory(username="alice", role="developer"))
    assert [client.get("/api/v1/tools/").status_code for _ in range(3)] == [200, 200, 429]
