"""Template context: the signed-in user's role, for navigation."""

from . import permissions as perms
from .models import Role


def goldpath(request):
    user = getattr(request, "user", None)
    role = perms.role_of(user)
    return {
        "gp_role": role,
        "gp_role_label": Role(role).label if role in Role.values else "",
        "gp_is_platform": perms.is_platform(user),
        "gp_is_admin": perms.is_admin(user),
        "gp_can_read_audit": perms.can_read_audit(user),
        "gp_can_read_reports": perms.can_read_reports(user),
        "gp_can_manage_vendor_keys": perms.can_manage_vendor_keys(user),
    }
