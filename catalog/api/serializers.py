"""Serializer helpers shared by every API module."""

from __future__ import annotations

from rest_framework import serializers


class StrictSerializerMixin:
    """Refuse unknown input fields with a 400 instead of silently ignoring them."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = set(data.keys()) - set(self.fields.keys())
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in sorted(unknown)})
        return super().to_internal_value(data)
