"""WSGI entry point (waitress in `make run`, gunicorn or any WSGI server in production)."""

import os

from django.core.wsgi import get_wsgi_application

os.umask(0o077)  # what the web server writes under GOLDPATH_HOME is the owner's only
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()
