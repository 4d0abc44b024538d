"""Page forms: they shape and check input; the services decide (and may add field errors back)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .models import (
    AITool,
    DataClassification,
    DataLocation,
    RiskTier,
    Role,
    RuntimeKind,
    Team,
    ToolKind,
    ToolStatus,
    UsageFormat,
)
from .services.errors import DomainError, InvalidInput


def _blank(choices) -> list[tuple[str, str]]:
    return [("", "Any"), *choices]


def add_domain_errors(form: forms.Form, exc: DomainError) -> None:
    """Show a service's InvalidInput field errors on the form (unknown fields go to the form itself; a form may
    name the field showing a service field in `SERVICE_FIELDS`)."""
    if not exc.errors:
        form.add_error(None, exc.message)
        return
    aliases = getattr(form, "SERVICE_FIELDS", {})
    for field, messages in exc.errors.items():
        field = aliases.get(field, field)
        for message in messages if isinstance(messages, list | tuple) else [messages]:
            form.add_error(field if field in form.fields else None, str(message))


class ToolFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=100)
    status = forms.ChoiceField(required=False, choices=_blank(ToolStatus.choices))
    kind = forms.ChoiceField(required=False, choices=_blank(ToolKind.choices))
    risk_tier = forms.ChoiceField(required=False, choices=_blank(RiskTier.choices), label="Risk tier")
    vendor = forms.ChoiceField(required=False, choices=[("", "Any")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        vendors = AITool.objects.order_by("vendor").values_list("vendor", flat=True).distinct()
        self.fields["vendor"].choices = _blank([(v, v) for v in vendors])


class ToolProposeForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(
        max_length=50, help_text="Lowercase letters, digits and hyphens; used in URLs, e.g. claude-code."
    )
    vendor = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=[("", "Choose…"), *ToolKind.choices])
    risk_tier = forms.ChoiceField(
        choices=[("", "Choose…"), *RiskTier.choices], help_text="High-risk tools need two approvers."
    )
    max_data_classification = forms.ChoiceField(
        choices=[("", "Choose…"), *DataClassification.choices],
        label="Highest data classification",
        help_text="The most sensitive data the tool may see.",
    )
    homepage = forms.URLField(required=False, assume_scheme="https")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    data_location = forms.ChoiceField(required=False, choices=[("", "Unknown"), *DataLocation.choices])
    pricing_note = forms.CharField(required=False, max_length=200)
    monthly_price_per_seat = forms.DecimalField(
        required=False, min_value=0, max_digits=10, decimal_places=2, label="Monthly price per seat (USD)"
    )
    owner_team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("slug"), required=False, to_field_name="slug", empty_label="platform (default)"
    )

    def service_data(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
        return data


class ToolEditForm(ToolProposeForm):
    """The propose form without the slug (it never changes), filled from the tool; every field goes to the
    service, which records only what changed."""

    owner_team = forms.ModelChoiceField(queryset=Team.objects.order_by("slug"), to_field_name="slug")

    def __init__(self, *args, tool: AITool, **kwargs):
        initial = {f: getattr(tool, f) for f in AITool.EDITABLE_FIELDS}
        super().__init__(*args, initial=initial, **kwargs)
        del self.fields["slug"]
        for name in ("kind", "risk_tier", "max_data_classification"):
            self.fields[name].choices = self.fields[name].choices[1:]  # no "Choose…": the tool has a value
        if tool.status == ToolStatus.APPROVED:
            self.fields["risk_tier"].help_text = (
                "Raising the risk tier sends this approved tool back to review; any change of tier clears "
                "the approvals collected."
            )

    def service_data(self) -> dict:
        return {f: self.cleaned_data[f] for f in AITool.EDITABLE_FIELDS if f in self.cleaned_data}


class ToolVersionForm(forms.Form):
    """Propose a version. The fields are shaped here (lines, commas, NAME=value); the service checks them."""

    version = forms.CharField(max_length=50, help_text="e.g. 2.1.332; agents may pin it, or 2.1.x for the newest 2.1.")
    release_notes_url = forms.URLField(required=False, assume_scheme="https", label="Release notes link")
    runtime_kind = forms.ChoiceField(
        required=False,
        choices=[("", "Built in (nothing to install)"), *RuntimeKind.choices],
        label="Runtime",
        help_text="The registry the CLI is installed from, pinned to one exact release.",
    )
    runtime_package = forms.CharField(
        required=False, max_length=214, label="Package", help_text="e.g. @anthropic-ai/claude-code or aider-chat"
    )
    runtime_version = forms.CharField(
        required=False, max_length=100, label="Package version", help_text="An exact release, e.g. 2.1.332."
    )
    launch_command = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        label="Headless launch command",
        help_text="One argument per line (an argv, never a shell string); one must contain {prompt}. {model} and "
        "{index} are filled per run.",
    )
    model_names = forms.CharField(
        required=False,
        max_length=20000,
        label="Models",
        help_text="Comma-separated model names; the first is the default. Required with a runtime.",
    )
    env = forms.CharField(
        required=False,
        max_length=100000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocapitalize": "off"}),
        label="Environment",
        help_text="One NAME=value per line; non-secret settings only (no keys, tokens, base URLs, proxies, PATH).",
    )
    usage_format = forms.ChoiceField(
        required=False,
        choices=UsageFormat.choices,
        initial=UsageFormat.NONE,
        label="Usage output",
        help_text="How the CLI reports its own usage.",
    )
    egress_hosts = forms.CharField(
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "off"}),
        label="Allowed egress hosts",
        help_text="One per line: host, *.suffix or an IP address, with an optional :port (without one, ports 80 "
        "and 443 only). Agent runs whose group allows the network reach only these, through the egress proxy.",
    )
    RUNTIME_FIELDS = ("runtime_kind", "runtime_package", "runtime_version")
    SERVICE_FIELDS = {"runtime": "runtime_package", "models": "model_names"}

    def __init__(self, *args, can_set_egress: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_set_egress:
            del self.fields["egress_hosts"]  # sandbox policy: platform engineers and admins only

    def clean_launch_command(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["launch_command"].splitlines() if line.strip()]

    def clean_model_names(self) -> list[str]:
        return [m.strip() for m in self.cleaned_data["model_names"].split(",") if m.strip()]

    def clean_egress_hosts(self) -> list[str]:
        return egress_lines(self.cleaned_data["egress_hosts"])

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["env"].splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Line {number}: write NAME=value.")
            if name.strip() in env:
                raise forms.ValidationError(f"Line {number}: {name.strip()[:60]} is set twice.")
            env[name.strip()] = value
        return env

    def service_data(self) -> dict:
        """The fields for tool_version_add/update, with the runtime as one object."""
        data = {k: v for k, v in self.cleaned_data.items() if k not in self.RUNTIME_FIELDS}
        parts = [self.cleaned_data.get(f, "").strip() for f in self.RUNTIME_FIELDS]
        data["runtime"] = dict(zip(("kind", "package", "version"), parts, strict=True)) if any(parts) else {}
        data["usage_format"] = data.get("usage_format") or UsageFormat.NONE
        return data


def egress_lines(text: str) -> list[str]:
    """One host pattern per line (blank lines ignored); the service checks the grammar."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class ToolVersionEditForm(ToolVersionForm):
    """Change a version, filled from it. Like PATCH, only the fields the request carries are sent (the page
    sends them all; the service records only what changed, and a change to what runs needs a new review)."""

    def __init__(self, *args, version, **kwargs):
        runtime = version.runtime or {}
        initial = {
            "release_notes_url": version.release_notes_url,
            "runtime_kind": runtime.get("kind", ""),
            "runtime_package": runtime.get("package", ""),
            "runtime_version": runtime.get("version", ""),
            "launch_command": "\n".join(version.launch_command or []),
            "model_names": ", ".join(version.model_names or []),
            "env": "\n".join(f"{k}={v}" for k, v in (version.env or {}).items()),
            "usage_format": version.usage_format,
            "egress_hosts": "\n".join(version.egress_hosts or []),
        }
        super().__init__(*args, initial=initial, **kwargs)
        del self.fields["version"]
        for field in self.fields.values():
            field.required = False

    def clean_launch_command(self) -> list[str]:
        return [line.strip() for line in (self.cleaned_data["launch_command"] or "").splitlines() if line.strip()]

    def service_data(self) -> dict:
        data = super().service_data()
        sent = set(self.data)
        if not sent & set(self.RUNTIME_FIELDS):
            data.pop("runtime")
        return {k: v for k, v in data.items() if k == "runtime" or k in sent}


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, reason_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reason_required = reason_required

    def clean_reason(self) -> str:
        reason = (self.cleaned_data.get("reason") or "").strip()
        if self.reason_required and not reason:
            raise forms.ValidationError("Give a reason; it is recorded in the audit log.")
        return reason


EXPIRY_FORMAT_ERROR = "Enter a date (YYYY-MM-DD) or a date and time (YYYY-MM-DD HH:MM)."


def parse_expiry(value: str | None) -> dt.datetime | None:
    """An expiry typed or picked in a page, as an aware datetime. A bare date means the end of that day; a date
    and time without a zone (what `<input type="datetime-local">` sends) is read in the site's time zone, so a
    grant never reaches the service with a naive datetime. Blank: no expiry. Bad text: ValidationError."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        when = parse_datetime(text.replace(" ", "T", 1)) if len(text) > 10 else None
        day = parse_date(text) if when is None else None
    except ValueError:  # well formed, impossible (2027-02-30)
        raise forms.ValidationError(EXPIRY_FORMAT_ERROR, code="invalid") from None
    if when is None and day is None:
        raise forms.ValidationError(EXPIRY_FORMAT_ERROR, code="invalid")
    if when is None:
        when = dt.datetime.combine(day, dt.time(23, 59, 59))
    if timezone.is_naive(when):
        when = timezone.make_aware(when, timezone.get_current_timezone())
    return when


def page_expiry(value: str | None) -> dt.datetime | None:
    """parse_expiry for views that call a service directly: bad text is the service's InvalidInput (a field
    error on `expires_at`), never a 500."""
    try:
        return parse_expiry(value)
    except forms.ValidationError as exc:
        raise InvalidInput("The grant is not valid.", errors={"expires_at": exc.messages}) from exc


class ExpiryField(forms.CharField):
    """A grant's expiry: a date or a date and time in the site's time zone (see parse_expiry)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"})

    def to_python(self, value):
        return parse_expiry(super().to_python(value))


class GrantForm(forms.Form):
    """Grant a team a tool from the team page; the service checks the rest (future expiry, narrowing only,
    budget) and its field errors come back onto these fields."""

    tool = forms.ModelChoiceField(
        queryset=AITool.objects.filter(status=ToolStatus.APPROVED).order_by("name"),
        to_field_name="slug",
        empty_label="Choose a tool…",
        error_messages={"invalid_choice": "Choose an approved tool; this one cannot be granted now."},
    )
    max_data_classification = forms.ChoiceField(
        required=False,
        choices=[("", "The tool's own clearance"), *DataClassification.choices],
        label="Narrow the classification",
    )
    expires_at = ExpiryField(required=False, label="Expires")
    seats = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    budget_usd = forms.CharField(
        required=False,
        max_length=20,
        label="Monthly model budget (USD)",
        widget=forms.NumberInput(attrs={"min": "0", "step": "0.01", "placeholder": "no budget"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tool"].label_from_instance = lambda tool: tool.name
        self.fields["expires_at"].help_text = (
            f"Blank: never. Times are in {timezone.get_current_timezone_name()}; a date alone means the end of "
            "that day."
        )

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["max_data_classification"] = data.get("max_data_classification") or ""
        return data


class MemberAddForm(forms.Form):
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        to_field_name="username",
        empty_label="Choose a person…",
    )
    role = forms.ChoiceField(required=False, choices=[("", "Keep current role"), *Role.choices])
    manager = forms.BooleanField(required=False, label="Manager of this team")


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=50, help_text="Lower-case letters, digits and hyphens; used in URLs and the API.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    verb = forms.CharField(required=False, max_length=64, help_text="e.g. tool.approved, or tool. for every tool verb")
    target = forms.CharField(required=False, max_length=200, help_text="e.g. a tool's slug")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")


class VendorApiKeyForm(forms.Form):
    """Add or replace (rotate) a team's key for a tool. The value is a password field: never rendered back."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("slug"), to_field_name="slug", empty_label="Choose a team…"
    )
    tool = forms.ModelChoiceField(
        queryset=AITool.objects.order_by("name"), to_field_name="slug", empty_label="Choose a tool…"
    )
    env_var = forms.CharField(
        max_length=100,
        label="Environment variable",
        help_text="The variable the tool reads, e.g. ANTHROPIC_API_KEY (upper case; not PATH, HOME or GOLDPATH_*).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    value = forms.CharField(
        max_length=4000,
        label="Key",
        help_text="Stored encrypted; only its last 4 characters are ever shown again. Saving replaces any key this "
        "team already has for the tool.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].label_from_instance = lambda team: f"{team.name} ({team.slug})"
        self.fields["tool"].label_from_instance = lambda tool: f"{tool.name} ({tool.slug}, {tool.get_status_display()})"
