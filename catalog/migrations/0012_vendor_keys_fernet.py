"""Re-encrypt stored secrets with the current Fernet key.

Before this version the Fernet key was derived from SECRET_KEY (on a laptop: a constant published in
the code). It is now GOLDPATH_FERNET_KEY or a key generated once into GOLDPATH_HOME/keys/fernet.key.
Values that no known key decrypts are left as they are (and reported). To run an older version
again, set its GOLDPATH_FERNET_KEY to the content of that key file.
"""

from django.db import migrations


def _rotate(model, field: str) -> tuple[int, int]:
    from catalog.agents.crypto import reencrypt

    changed, unreadable = [], 0
    for obj in model.objects.exclude(**{field: ""}).only("pk", field).iterator():
        try:
            setattr(obj, field, reencrypt(getattr(obj, field)))
        except ValueError:
            unreadable += 1
            continue
        changed.append(obj)
    model.objects.bulk_update(changed, [field], batch_size=500)
    return len(changed), unreadable


def reencrypt_secrets(apps, schema_editor) -> None:
    unreadable = _rotate(apps.get_model("catalog", "VendorApiKey"), "ciphertext")[1]
    unreadable += _rotate(apps.get_model("catalog", "Repository"), "credential_ciphertext")[1]
    if unreadable:
        print(f"\n  {unreadable} stored secret(s) could not be decrypted with any known key; left unchanged.")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0011_repositories"),
    ]

    operations = [
        migrations.RunPython(reencrypt_secrets, migrations.RunPython.noop, elidable=True),
    ]
