"""One-row inserts and updates of the gateway's rows, with a statement written once per model.

One-row inserts and updates with a statement written once per model: the gateway writes a row or two per model
call, after its last byte, and the ORM's per-call compile of an INSERT costs more than the insert itself.

Values are prepared by each field exactly as `Model.save()` would (`pre_save` for auto_now_add, then
`get_db_prep_save`); no signals are sent (nothing in Goldpath listens to these models' signals).
"""

from __future__ import annotations

from functools import lru_cache

from django.apps import apps
from django.db import connection, models


@lru_cache(maxsize=16)
def _statement(label: str, vendor: str) -> tuple[str, tuple[str, ...], bool]:
    meta = apps.get_model(label)._meta
    fields = tuple(f.attname for f in meta.concrete_fields if not f.primary_key)
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) VALUES ({placeholders})"
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    return sql, fields, returning


def insert_row(obj: models.Model) -> models.Model:
    """INSERT `obj` (a new instance with an auto primary key) as one row; sets and returns it with its pk."""
    meta = obj._meta
    sql, fields, returning = _statement(meta.label, connection.vendor)
    params = []
    for name in fields:
        field = meta.get_field(name)
        params.append(field.get_db_prep_save(field.pre_save(obj, add=True), connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        obj.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


@lru_cache(maxsize=16)
def _update_statement(label: str, vendor: str) -> tuple[str, tuple[str, ...]]:
    meta = apps.get_model(label)._meta
    fields = tuple(f.attname for f in meta.concrete_fields if not f.primary_key)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    return sql, fields


def update_row(obj: models.Model) -> int:
    """UPDATE every column of `obj`'s row (by pk) with its current values (auto_now_add fields keep theirs);
    returns the number of rows updated."""
    meta = obj._meta
    sql, fields = _update_statement(meta.label, connection.vendor)
    params = []
    for name in fields:
        field = meta.get_field(name)
        params.append(field.get_db_prep_save(field.pre_save(obj, add=False), connection))
    params.append(obj.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
