"""DRF permission classes built on catalog.permissions predicates."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .. import permissions as perms


class CanReadAudit(BasePermission):
    message = "Only auditors, platform engineers and admins may read the audit log."

    def has_permission(self, request, view) -> bool:
        return perms.can_read_audit(request.user)


class AdminWritesOthersRead(BasePermission):
    message = "Only admins manage teams, members and roles."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # anonymous callers read nothing (401)
        if request.method in SAFE_METHODS or not hasattr(view, request.method.lower()):
            return True  # reads; and a method the route does not answer gets its 405
        return perms.can_manage_teams(request.user)
