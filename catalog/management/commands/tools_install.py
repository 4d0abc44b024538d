"""Install tool runtimes on this machine ahead of the first run.

`manage.py tools_install claude-code@2.1.332 aider` or `--all-approved` (what `make tools` runs). One line per tool
version; a failure of one does not stop the others, and the command exits non-zero when any failed.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from ...models import AITool, ToolStatus, ToolVersion, VersionReview
from ...runtimes import RuntimeInstallError, describe, ensure_installed, is_installed, spec_of


class Command(BaseCommand):
    help = "Install the pinned runtimes (npm or PyPI packages) of tool versions into TOOLS_DIR."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "tools", nargs="*", metavar="slug[@version]", help="a tool (its newest approved version) or a version"
        )
        parser.add_argument(
            "--all-approved",
            action="store_true",
            help="every approved version with a runtime, of every approved tool",
        )

    def handle(self, *args, **options) -> None:
        names: list[str] = options["tools"]
        if not names and not options["all_approved"]:
            raise CommandError("Name tools (slug or slug@version) or give --all-approved.")
        versions = _resolve(names)
        if options["all_approved"]:
            versions += [v for v in _all_approved() if v.pk not in {known.pk for known in versions}]
        if not versions:
            self.stdout.write("Nothing to install: no approved version of an approved tool has a runtime.")
        failed = [str(v) for v in versions if not self._install(v)]
        if failed:
            raise CommandError(f"{len(failed)} of {len(versions)} runtimes were not installed: {', '.join(failed)}.")

    def _install(self, version: ToolVersion) -> bool:
        label = f"{version.tool.slug}@{version.version}"
        prefix = f"{label}: "  # the line's start, until "installing ..." is on it
        try:
            spec = spec_of(version)
            if not spec:
                self.stdout.write(f"{label}: built in, no runtime to install")
                return True
            if is_installed(version):
                ensure_installed(version)  # makes it readable again if GOLDPATH_HOME's tightening changed it
                self.stdout.write(f"{label}: already installed")
                return True
            self.stdout.write(f"{label}: installing {describe(spec)} ... ", ending="")
            self.stdout.flush()
            prefix = ""
            started = time.monotonic()
            ensure_installed(version)
        except RuntimeInstallError as exc:
            self.stdout.write(f"{prefix}failed: {exc}")
            return False
        self.stdout.write(f"done in {time.monotonic() - started:.1f} s")
        return True


def _resolve(names: list[str]) -> list[ToolVersion]:
    """Each `slug[@version]` as a ToolVersion; every unknown name is reported at once, before anything installs."""
    found: list[ToolVersion] = []
    problems: list[str] = []
    for name in names:
        slug, _, number = name.partition("@")
        tool = AITool.objects.filter(slug=slug).first()
        if tool is None:
            problems.append(f"no tool {slug!r}")
            continue
        versions = ToolVersion.objects.select_related("tool").filter(tool=tool)
        if number:
            version = versions.filter(version=number).first()
            if version is None:
                problems.append(f"{slug} has no version {number!r}")
                continue
        else:
            version = versions.filter(review_state=VersionReview.APPROVED).order_by("-created_at", "-pk").first()
            if version is None:
                problems.append(f"{slug} has no approved version (name one: {slug}@<version>)")
                continue
        if all(version.pk != v.pk for v in found):
            found.append(version)
    if problems:
        raise CommandError("; ".join(problems) + ".")
    return found


def _all_approved() -> list[ToolVersion]:
    versions = ToolVersion.objects.select_related("tool").filter(
        tool__status=ToolStatus.APPROVED, review_state=VersionReview.APPROVED
    )
    return [v for v in versions.order_by("tool__slug", "created_at", "pk") if v.runtime]
