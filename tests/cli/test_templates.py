"""`goldpath templates push DIR`: a folder uploaded as a new version, validated by a real worker with real
Terraform and published (or kept a draft with the validation errors printed)."""

from __future__ import annotations

import pytest

from catalog.models import TemplateVersion
from catalog.services import templates as template_services
from tests.conftest import require_binary
from tests.tf.templates import BROKEN, ECHO

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def folder(root, files: dict[str, str]):
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def echo_template(people):
    require_binary("terraform", "Terraform")
    return template_services.template_create(actor=people["bob"], slug="echo", name="Echo")


def test_push_validates_publishes_and_activates(goldpath, celery_worker, people, echo_template, tmp_path):
    source = folder(tmp_path / "echo", ECHO)
    (source / ".terraform").mkdir()
    (source / ".terraform" / "junk.txt").write_text("cache")
    (source / "terraform.tfstate").write_text("{}")
    goldpath.login("bob")
    result = goldpath("templates", "push", str(source), "-m", "First cut", "--activate", timeout=300)
    assert result.code == 0, result
    version = TemplateVersion.objects.get(template=echo_template)
    assert version.status == "published" and version.is_active and version.changelog == "First cut"
    assert sorted(version.files) == ["main.tf", "variables.tf"]  # no cache or state uploaded
    assert "Uploaded 2 files: echo v1 created." in result.err
    assert "echo v1 is published and active" in result.out and "parameters: " in result.out and "sleep_s" in result.out

    again = goldpath("templates", "push", str(source), "--slug", "echo", "--json", timeout=300)
    assert again.code == 0, again
    assert again.json["created"] is False and again.json["number"] == 1 and again.json["status"] == "published"
    assert TemplateVersion.objects.filter(template=echo_template).count() == 1


def test_push_prints_validation_errors_and_exits_1(goldpath, celery_worker, people, echo_template, tmp_path):
    goldpath.login("bob")
    broken = goldpath("templates", "push", str(folder(tmp_path / "echo", BROKEN)), timeout=300)
    assert broken.code == 1, broken
    version = TemplateVersion.objects.get(template=echo_template)
    assert version.status == "draft" and "missing" in version.diagnostics
    assert "missing" in broken.err and "echo v1 did not pass validation and stays a draft." in broken.err


def test_push_refusals_are_readable(goldpath, people, echo_template, tmp_path):
    goldpath.login("bob")
    no_tf = goldpath("templates", "push", str(folder(tmp_path / "echo", {"README.md": "# hi\n"})))
    assert no_tf.code == 1 and "The template has no .tf file." in no_tf.err and "files: No .tf file found." in no_tf.err
    unknown = goldpath("templates", "push", str(tmp_path / "echo"), "--slug", "nope")
    assert unknown.code == 1 and "No template 'nope'" in unknown.err
    not_a_folder = goldpath("templates", "push", str(tmp_path / "missing"))
    assert not_a_folder.code == 2 and "is not a folder" in not_a_folder.err
    goldpath.login("alice")
    developer = goldpath("templates", "push", str(folder(tmp_path / "dev" / "echo", ECHO)))
    assert developer.code == 1 and "Only platform engineers and admins" in developer.err
    assert not TemplateVersion.objects.exists()
