"""AI tools, their versions and the approvals collected while they are in review."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from .teams import Team

TOOL_SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class ToolKind(models.TextChoices):
    ASSISTANT = "assistant", "Assistant"
    AGENT = "agent", "Agent"
    IDE = "ide", "IDE"
    CLI = "cli", "CLI"
    MCP_SERVER = "mcp_server", "MCP server"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class DataClassification(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    RESTRICTED = "restricted", "Restricted"

    @classmethod
    def rank(cls, value: str) -> int:
        return [c.value for c in cls].index(value)


class DataLocation(models.TextChoices):
    VENDOR_CLOUD = "vendor_cloud", "Vendor cloud"
    SELF_HOSTED = "self_hosted", "Self-hosted"
    LOCAL = "local", "Local"


class ToolStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"
    BANNED = "banned", "Banned"


class VersionReview(models.TextChoices):
    """A tool version runs only once approved; a change to what it runs sends it back to `proposed`."""

    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class RuntimeKind(models.TextChoices):
    NPM = "npm", "npm package"
    PYPI = "pypi", "PyPI package"


class UsageFormat(models.TextChoices):
    """Which parser reads the usage a CLI prints about itself (kept beside the gateway's own figures)."""

    CLAUDE_STREAM_JSON = "claude-stream-json", "Claude Code stream-json"
    CODEX_JSON = "codex-json", "Codex CLI --json"
    AIDER_TEXT = "aider-text", "Aider text"
    NONE = "none", "None"


class AITool(models.Model):
    """A coding assistant or agent in the catalog, with its lifecycle status."""

    # the tool's details: a proposal sets them (with the slug, which never changes after) and an edit may change
    # them; the edit service, the API serializers and the page forms all take the list from here
    EDITABLE_FIELDS = (
        "name",
        "vendor",
        "kind",
        "risk_tier",
        "max_data_classification",
        "homepage",
        "description",
        "data_location",
        "pricing_note",
        "monthly_price_per_seat",
        "owner_team",
    )

    slug = models.CharField(max_length=50, unique=True, validators=[TOOL_SLUG_VALIDATOR])
    name = models.CharField(max_length=100)
    vendor = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ToolKind.choices)
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices)
    max_data_classification = models.CharField(max_length=20, choices=DataClassification.choices)
    homepage = models.URLField(blank=True)
    description = models.TextField(blank=True)
    data_location = models.CharField(max_length=20, choices=DataLocation.choices, blank=True)
    pricing_note = models.CharField(max_length=200, blank=True)
    monthly_price_per_seat = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    owner_team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="owned_tools")
    status = models.CharField(max_length=20, choices=ToolStatus.choices, default=ToolStatus.PROPOSED, db_index=True)
    review_due = models.DateField(null=True, blank=True)
    review_warning_sent_for = models.DateField(null=True, blank=True, editable=False)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="proposed_tools"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("use_aitool", "May use this AI tool")]

    def __str__(self) -> str:
        return self.slug

    @property
    def required_approvals(self) -> int:
        return 2 if self.risk_tier == RiskTier.HIGH else 1


class ToolVersion(models.Model):
    """A released version of a tool: its pinned runtime, how to launch it headless (an argv template, never a
    shell), the models it may call and the hosts it may reach. Runs only once `approved`."""

    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=50)
    release_notes_url = models.URLField(blank=True)
    launch_command = models.JSONField(default=list, help_text="argv template with a {prompt} placeholder")
    model_names = models.JSONField(default=list, blank=True, help_text="model names this version may use")
    per_use_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    egress_hosts = models.JSONField(
        default=list, blank=True, help_text="hosts an agent run may reach through the egress proxy (`*.suffix` ok)"
    )
    runtime = models.JSONField(
        default=dict, blank=True, help_text='{"kind": "npm"|"pypi", "package", "version"}; empty: built in'
    )
    env = models.JSONField(default=dict, blank=True, help_text="non-secret environment for the CLI")
    usage_format = models.CharField(max_length=30, choices=UsageFormat.choices, default=UsageFormat.NONE)
    review_state = models.CharField(
        max_length=12, choices=VersionReview.choices, default=VersionReview.PROPOSED, db_index=True
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tool", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["tool", "version"], name="uniq_tool_version")]

    def __str__(self) -> str:
        return f"{self.tool.slug}@{self.version}"


class ToolApproval(models.Model):
    """One reviewer's approval collected while a tool is in review (two distinct for high risk)."""

    tool = models.ForeignKey(AITool, on_delete=models.CASCADE, related_name="approvals")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["tool", "reviewer"], name="uniq_tool_reviewer_approval")]

    def __str__(self) -> str:
        return f"{self.tool} approved by {self.reviewer}"


class ToolVersionApproval(models.Model):
    """One reviewer's approval of a proposed tool version (the tool's rules: two distinct for high risk)."""

    version = models.ForeignKey(ToolVersion, on_delete=models.CASCADE, related_name="approvals")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "reviewer"], name="uniq_tool_version_reviewer_approval")
        ]

    def __str__(self) -> str:
        return f"{self.version} approved by {self.reviewer}"
