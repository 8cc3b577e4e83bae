"""Settings of the likelihood portal; everything configurable is read from the environment here."""

from pathlib import Path

import dj_database_url

from hepstore.config import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("HEPSTORE_DATA_DIR", str(BASE_DIR / "data"))).resolve()

SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-change-me")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "hepstore",
    "reinterpret",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hepstore.urls"
WSGI_APPLICATION = "hepstore.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'hepstore.sqlite3'}"),
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Writers wait for each other instead of failing at once (ingestion holds a transaction):
    # a busy timeout, write-ahead logging (readers never block the writer) and transactions
    # that take the write lock when they begin, so two writers cannot deadlock on upgrading.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env_int("HEPSTORE_SQLITE_BUSY_SECONDS", 30),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

LOGIN_URL = "/admin/login/"

# Uploads: anything above the memory threshold is streamed to a temporary file, and the
# limit is enforced from the Content-Length before the body is read.
HEPSTORE_MAX_UPLOAD_BYTES = env_int("HEPSTORE_MAX_UPLOAD_MB", 200) * 1024 * 1024
HEPSTORE_MAX_UNPACKED_BYTES = env_int("HEPSTORE_MAX_UNPACKED_MB", 1024) * 1024 * 1024
HEPSTORE_MAX_ARCHIVE_MEMBERS = env_int("HEPSTORE_MAX_ARCHIVE_MEMBERS", 20000)
# Largest single JSON (or YAML) document read; the largest published likelihood is 57 MB.
HEPSTORE_MAX_JSON_BYTES = env_int("HEPSTORE_MAX_JSON_MB", 100) * 1024 * 1024
# Anonymous validation may be held to a smaller upload than an authenticated submitter's.
HEPSTORE_ANONYMOUS_MAX_UPLOAD_BYTES = env_int("HEPSTORE_ANONYMOUS_MAX_UPLOAD_MB", 50) * 1024 * 1024
# Uploads validated at once per process; the others wait this long, then get 503 + Retry-After.
HEPSTORE_MAX_CONCURRENT_VALIDATIONS = env_int("HEPSTORE_MAX_CONCURRENT_VALIDATIONS", 2)
HEPSTORE_VALIDATION_WAIT_SECONDS = env_int("HEPSTORE_VALIDATION_WAIT_SECONDS", 10)
DATA_UPLOAD_MAX_MEMORY_SIZE = HEPSTORE_MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
HEPSTORE_BLOB_DIR = DATA_DIR / "blobs"
# Request upload files go under the data dir's scratch space, where fsck finds those a killed
# server left (hepstore/scratch.py); the system default is used if it cannot be made.
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "tmp" / "requests"
try:
    FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
except OSError:
    FILE_UPLOAD_TEMP_DIR = None
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "hepstore.uploads.LockedTemporaryFileUploadHandler",
]

ELASTICSEARCH_URL = env_str("ELASTICSEARCH_URL", "")
REDIS_URL = env_str("REDIS_URL", "")

# Fitter/jobs limits.
REINTERPRET_MAX_CONCURRENT_FITS = env_int("REINTERPRET_MAX_CONCURRENT_FITS", 2)
REINTERPRET_MAX_QUEUED_JOBS = env_int("REINTERPRET_MAX_QUEUED_JOBS", 50)
REINTERPRET_MEMORY_BUDGET_MB = env_int("REINTERPRET_MEMORY_BUDGET_MB", 2048)
# A running job whose heartbeat is older than this is taken to be orphaned and re-queued.
REINTERPRET_STALE_SECONDS = env_int("REINTERPRET_STALE_SECONDS", 60)
# Signal points a scan evaluates per batch (and writes per progress step).
REINTERPRET_SCAN_CHUNK = env_int("REINTERPRET_SCAN_CHUNK", 32)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "hepstore.api.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HEP likelihood portal API",
    "DESCRIPTION": "Archive, validation and reinterpretation of HistFactory likelihoods.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the package, so the docs page works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
