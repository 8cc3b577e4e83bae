"""Settings of the likelihood portal; everything configurable is read from the environment here
(through the typed readers of `hepstore.config`, which stop start-up on an unparsable value).

The defaults are safe for production (DEBUG off, a per-installation secret key) and run with no
other service (SQLite, database search, database job queue)."""

from pathlib import Path

from hepstore.config import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_str,
    env_url,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("HEPSTORE_DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key(DATA_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind a TLS-terminating proxy: HSTS, redirect to https, cookies only over https, and the
# proxy's X-Forwarded-Proto trusted (the proxy must set it and strip it from clients).
HEPSTORE_HTTPS = env_bool("HEPSTORE_HTTPS", False)
if HEPSTORE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe the health check over plain http.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("HEPSTORE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Pages: scripts and styles only from the portal itself (inline <style> is allowed because
# Swagger UI's page and inline SVG figures carry one; no inline script anywhere).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Served SVG images: nothing may run or load; only their own inline styles apply.
CONTENT_SECURITY_POLICY_SVG = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

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
    # Above whitenoise, so that static files (SVG among them) get the header too.
    "hepstore.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
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

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'hepstore.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # Writers wait for each other instead of failing at once (ingestion holds a transaction).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("HEPSTORE_STATIC_ROOT", str(DATA_DIR / "static"))).resolve()
# Served by whitenoise from STATIC_ROOT: `manage.py collectstatic` writes compressed copies
# under content-hashed names (cached forever by browsers). DEBUG serves the source folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "/admin/login/"

# Uploads: anything above the memory threshold is streamed to a temporary file, and the
# limit is enforced from the Content-Length before the body is read.
HEPSTORE_MAX_UPLOAD_BYTES = env_int("HEPSTORE_MAX_UPLOAD_MB", 200) * 1024 * 1024
HEPSTORE_MAX_UNPACKED_BYTES = env_int("HEPSTORE_MAX_UNPACKED_MB", 1024) * 1024 * 1024
HEPSTORE_MAX_ARCHIVE_MEMBERS = env_int("HEPSTORE_MAX_ARCHIVE_MEMBERS", 20000)
DATA_UPLOAD_MAX_MEMORY_SIZE = HEPSTORE_MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
HEPSTORE_BLOB_DIR = DATA_DIR / "blobs"

ELASTICSEARCH_URL = env_url("ELASTICSEARCH_URL", ("http", "https"))
# With REDIS_URL jobs run on Celery workers (`celery -A hepstore worker`), else on the
# database queue (`manage.py worker`, or the worker embedded in `manage.py serve`).
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "hepstore")
# A message is acknowledged when its task has finished, so a chunk whose worker died is
# delivered again; prefetch 1 leaves the rest of a scan to the other workers.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged message is handed out again this long after delivery: above the longest
# chunk (chunks are a few seconds; a redelivered chunk skips the points already stored).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Sweep for the messages of dead workers every tenth of the timeout (at most a minute).
    "unacked_restore_interval": max(1, min(60, CELERY_VISIBILITY_TIMEOUT // 10)),
    "unacked_restore_throttle": 1,
    # Keys of several installations (or test runs) sharing one Redis stay apart.
    "global_keyprefix": env_str("CELERY_KEY_PREFIX", "hepstore:"),
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
}

# Fitter/jobs limits.
REINTERPRET_MAX_CONCURRENT_FITS = env_int("REINTERPRET_MAX_CONCURRENT_FITS", 2, minimum=1)
REINTERPRET_MAX_QUEUED_JOBS = env_int("REINTERPRET_MAX_QUEUED_JOBS", 50, minimum=1)
REINTERPRET_MEMORY_BUDGET_MB = env_int("REINTERPRET_MEMORY_BUDGET_MB", 2048, minimum=16)
# A running job whose heartbeat is older than this is taken to be orphaned and re-queued.
REINTERPRET_STALE_SECONDS = env_int("REINTERPRET_STALE_SECONDS", 60, minimum=1)
# Most signal points in one chunk of a scan (a batch, a progress step, a Celery task); the
# memory model may make chunks smaller.
REINTERPRET_SCAN_CHUNK = env_int("REINTERPRET_SCAN_CHUNK", 32, minimum=1)

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

LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))
LOG_LEVEL = env_choice(
    "LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")
).upper()
# One line per event with time, level, logger and the job/worker it belongs to (if any).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "hepstore.logs.ContextFilter"}},
    "formatters": {
        "text": {"()": "hepstore.logs.TextFormatter"},
        "json": {"()": "hepstore.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
