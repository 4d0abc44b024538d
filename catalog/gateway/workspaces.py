"""A workspace's gateway credential (`gpw_...`) as the gateway sees it on each call.

The key is one per workspace start (catalog.services.workspace_tools mints it and revokes the previous one);
its row names the tool versions the policy allowed at that start. Every call reads the current state again
(the workspace's status, owner, team, classification and template; each tool's and version's state; the grant's
budget; the vendor key), so a stop, a revocation, a ban or a lost grant takes effect on the next call. Plain ORM
reads (a few queries): a workspace's calls are a developer's interactive ones, not a fan-out of runs.

Which tool a call is for: the tool versions of the key whose `model_names` allow the requested model; when
several do, the one whose CLI speaks the call's protocol (its `usage_format`: Claude Code -> Anthropic Messages,
Codex -> Responses, Aider -> Chat Completions), then the first by slug. The call is metered on that tool.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from ..models import AccessGrant, GrantState, ToolVersion, UsageFormat, VendorApiKey, WorkspaceStatus
from ..models.gateway import WorkspaceGatewayKey
from .context import CallerState
from .errors import GatewayError
from .model_names import model_allowed
from .protocols import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES

PREFIX = "gpw_"
# a workspace's tools may call models while it starts (its agent comes up during the start build) and runs
LIVE = (WorkspaceStatus.STARTING, WorkspaceStatus.RUNNING)
SPOKEN = {
    UsageFormat.CLAUDE_STREAM_JSON: (ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS),
    UsageFormat.CODEX_JSON: (OPENAI_RESPONSES,),
    UsageFormat.AIDER_TEXT: (OPENAI_CHAT,),
}


def key_hash(raw: str) -> str | None:
    """The stored hash a workspace key would have, or None when `raw` cannot be one."""
    if not raw or not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class WorkspaceCredential:
    key: WorkspaceGatewayKey
    versions: list[ToolVersion]  # the key's tool versions, current rows, by tool slug

    @property
    def workspace(self):
        return self.key.workspace

    @property
    def status(self) -> str:
        return self.workspace.status

    @property
    def model_names(self) -> list[str]:
        names: list[str] = []
        for version in self.versions:
            names += [str(n) for n in version.model_names or [] if str(n) not in names]
        return names

    @property
    def fallback(self) -> CallerState | None:
        """The state a refusal is charged to before the call's tool is known: the first tool, if any."""
        return self.state_for(self.versions[0]) if self.versions else None

    def resolve(self, model: str, protocol: str) -> CallerState:
        fits = [v for v in self.versions if model_allowed(model, list(v.model_names or []))]
        if not fits:
            allowed = ", ".join(self.model_names) or "none"
            tools = ", ".join(f"{v.tool.slug}@{v.version}" for v in self.versions) or "no tools"
            raise GatewayError(
                403,
                "model_not_allowed",
                f"model {model} is not allowed for this workspace's tools ({tools}); allowed: {allowed}",
            )
        spoken = [v for v in fits if protocol in SPOKEN.get(v.usage_format, ())]
        return self.state_for((spoken or fits)[0])

    def state_for(self, version: ToolVersion) -> CallerState:
        workspace = self.workspace
        tool = version.tool
        now = timezone.now()
        grant = (
            AccessGrant.objects.filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now),
                team_id=workspace.team_id,
                tool=tool,
                state=GrantState.ACTIVE,
                permission__isnull=False,
            )
            .values_list("budget_usd", flat=True)
            .first()
        )
        cipher = (
            VendorApiKey.objects.filter(team_id=workspace.team_id, tool=tool)
            .values_list("ciphertext", flat=True)
            .first()
        )
        return CallerState(
            run=None,
            status=workspace.status,
            tool=copy.copy(tool),
            requester=workspace.owner,
            version_label=f"{tool.slug}@{version.version}",
            review_state=version.review_state,
            model_names=list(version.model_names or []),
            budget_usd=None if grant is None else Decimal(str(grant)),
            vendor_ciphertext=cipher or "",
            team=workspace.team,
            classification=workspace.classification,
            template=workspace.template,
            workspace=workspace,
        )


def workspace_credential(token_sha256: str) -> WorkspaceCredential | None:
    """The live (not revoked) workspace key with this hash and its current rows, or None."""
    key = (
        WorkspaceGatewayKey.objects.select_related("workspace__owner", "workspace__team", "workspace__template")
        .filter(token_sha256=token_sha256, revoked_at__isnull=True)
        .first()
    )
    if key is None:
        return None
    ids = [int(i) for i in key.tool_versions or [] if isinstance(i, int)]
    versions = list(ToolVersion.objects.select_related("tool").filter(pk__in=ids).order_by("tool__slug", "pk"))
    return WorkspaceCredential(key=key, versions=versions)
