"""Celery tasks: take ids, are sent on commit, call a service, and are idempotent."""

from celery.signals import task_postrun, task_prerun

from ..context import set_request_id
from . import agents, catalog, notify, policy, provisioning, reports  # noqa: E402,F401  (registers the tasks)

_tokens: dict[str, object] = {}


@task_prerun.connect
def _bind_request_id(task_id=None, **_kwargs) -> None:
    """Audit events written inside a task carry the task id as their request id."""
    _tokens[task_id] = set_request_id(f"task-{task_id}")


@task_postrun.connect
def _unbind_request_id(task_id=None, **_kwargs) -> None:
    _tokens.pop(task_id, None)
