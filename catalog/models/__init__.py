"""Models, one module per concept; import them from here."""

from .access import (
    AccessGrant,
    AccessRequest,
    AccessRequestStatus,
    AIToolGroupObjectPermission,
    AIToolUserObjectPermission,
    GrantState,
)
from .audit import AuditEvent
from .notifications import Notification
from .teams import Profile, Role, Team
from .tools import (
    AITool,
    DataClassification,
    DataLocation,
    RiskTier,
    ToolApproval,
    ToolKind,
    ToolStatus,
    ToolVersion,
)
from .usage import (
    ACTIVE_KINDS,
    RollupState,
    UsageDaily,
    UsageEvent,
    UsageFirstUse,
    UsageKind,
    UsagePeriod,
    UsagePeriodBucket,
    UsagePeriodUsers,
    UsageReadyBucket,
    UsageUserDay,
)

__all__ = [
    "AccessGrant",
    "AccessRequest",
    "AccessRequestStatus",
    "AIToolGroupObjectPermission",
    "AIToolUserObjectPermission",
    "GrantState",
    "AITool",
    "AuditEvent",
    "DataClassification",
    "DataLocation",
    "Notification",
    "Profile",
    "RiskTier",
    "Role",
    "Team",
    "ToolApproval",
    "ToolKind",
    "ToolStatus",
    "ToolVersion",
    "ACTIVE_KINDS",
    "RollupState",
    "UsageDaily",
    "UsageEvent",
    "UsageFirstUse",
    "UsageKind",
    "UsagePeriod",
    "UsagePeriodBucket",
    "UsagePeriodUsers",
    "UsageReadyBucket",
    "UsageUserDay",
]
