"""Settings of the test project: one SQLite database, at ``$WARMUP_TEST_DJANGO_DB`` (each test its own)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "warmup-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "warmup.contrib.django",
    "uploader",
    # more apps for one test (e.g. "dupes"), comma-separated
    *filter(None, os.environ.get("WARMUP_TEST_DJANGO_APPS", "").split(",")),
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("WARMUP_TEST_DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
        # SQLite's busy timeout, in seconds (Python's default: 5); the tests shorten it to make waits retry.
        "OPTIONS": {"timeout": float(os.environ.get("WARMUP_TEST_DJANGO_TIMEOUT", "5"))},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
