"""Settings of the likelihood portal; everything configurable is read from the environment here
(through the typed readers of `hepstore.config`, which stop start-up on an unparsable value).

The defaults are safe for production (DEBUG off, a per-installation secret key) and run with no
other service (SQLite, database search, database job queue)."""

from pathlib import Path

from hepstore.config import (
    env_bool,
    env_choice,
    env_database,
    env_float,
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
    "django_filters",
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
    "hepstore.middleware.UserErrorPageMiddleware",
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
    # Tests get a file too, not Django's default shared-cache in-memory database: there a
    # second thread (the live server, the job worker) meets "database table is locked" at
    # once instead of waiting out the busy timeout, which is not how the portal runs.
    DATABASES["default"].setdefault("TEST", {}).setdefault(
        "NAME", str(DATA_DIR / "test-hepstore.sqlite3")
    )

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
# Largest single JSON (or YAML) document read; the largest published likelihood is 57 MB.
HEPSTORE_MAX_JSON_BYTES = env_int("HEPSTORE_MAX_JSON_MB", 100) * 1024 * 1024
# Anonymous validation may be held to a smaller upload than an authenticated submitter's.
HEPSTORE_ANONYMOUS_MAX_UPLOAD_BYTES = env_int("HEPSTORE_ANONYMOUS_MAX_UPLOAD_MB", 50) * 1024 * 1024
# Uploads validated at once per process; the others wait this long, then get 503 + Retry-After.
HEPSTORE_MAX_CONCURRENT_VALIDATIONS = env_int("HEPSTORE_MAX_CONCURRENT_VALIDATIONS", 2)
HEPSTORE_VALIDATION_WAIT_SECONDS = env_int("HEPSTORE_VALIDATION_WAIT_SECONDS", 10)
DATA_UPLOAD_MAX_MEMORY_SIZE = HEPSTORE_MAX_UPLOAD_BYTES
# JSON request bodies of the API (custom signals, patches, scan point lists).
HEPSTORE_MAX_JSON_BODY_BYTES = env_int("HEPSTORE_MAX_JSON_BODY_KB", 10 * 1024) * 1024
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

# Django's cache holds the request-rate counters (hepstore/api/throttles.py) and the fit
# details of points: one cache for every process of the portal, so that a limit means the
# same with four web workers as with one. With REDIS_URL it is that Redis (every host; its
# keys under the installation's prefix), else files in the data directory (every process on
# this host).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] + "cache",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": env_int("HEPSTORE_CACHE_MAX_ENTRIES", 5000, minimum=10)},
        }
    }

# Fitter/jobs limits.
REINTERPRET_MAX_CONCURRENT_FITS = env_int("REINTERPRET_MAX_CONCURRENT_FITS", 2, minimum=1)
REINTERPRET_MAX_QUEUED_JOBS = env_int("REINTERPRET_MAX_QUEUED_JOBS", 50, minimum=1)
REINTERPRET_MEMORY_BUDGET_MB = env_int("REINTERPRET_MEMORY_BUDGET_MB", 2048, minimum=16)
# Pending (queued + running) jobs one client (user or address) may have.
REINTERPRET_MAX_QUEUED_PER_CLIENT = env_int("REINTERPRET_MAX_QUEUED_PER_CLIENT", 5)
# Retry-After (seconds) sent with a 429 for a full queue.
REINTERPRET_RETRY_AFTER_SECONDS = env_int("REINTERPRET_RETRY_AFTER_SECONDS", 30)
# A custom signal is fitted inside the request only when the likelihood's recent fits took
# at most this much CPU time (s), and at most REINTERPRET_MAX_SYNC_FITS at once per process;
# otherwise it becomes a job.
REINTERPRET_SYNC_FIT_CPU_SECONDS = env_float("REINTERPRET_SYNC_FIT_CPU_SECONDS", 2.0, minimum=0)
REINTERPRET_MAX_SYNC_FITS = env_int("REINTERPRET_MAX_SYNC_FITS", 2)
# Cached results of custom signals expire, and only the newest so many are kept.
REINTERPRET_CUSTOM_CACHE_TTL_HOURS = env_int("REINTERPRET_CUSTOM_CACHE_TTL_HOURS", 168)
REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES = env_int("REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES", 10000)
# A running job whose heartbeat is older than this is taken to be orphaned and re-queued.
REINTERPRET_STALE_SECONDS = env_int("REINTERPRET_STALE_SECONDS", 60, minimum=1)
# Most signal points in one chunk of a scan (a batch, a progress step, a Celery task); the
# memory model may make chunks smaller.
REINTERPRET_SCAN_CHUNK = env_int("REINTERPRET_SCAN_CHUNK", 32, minimum=1)

# Request rates per scope ("N/second|minute|hour|day"; empty: unlimited), for anonymous
# clients (per address) and authenticated users (per user). See hepstore/api/throttles.py.
_THROTTLE_DEFAULTS = {
    "validate": ("10/min", "60/min"),
    "reinterpret": ("20/min", "120/min"),
    "scan": ("5/min", "30/min"),
    "submissions": ("10/min", "30/min"),
}
HEPSTORE_THROTTLE_RATES = {
    f"{scope}_{kind}": env_str(f"HEPSTORE_THROTTLE_{scope.upper()}_{kind.upper()}", rate) or None
    for scope, rates in _THROTTLE_DEFAULTS.items()
    for kind, rate in zip(("anon", "user"), rates, strict=True)
}
HEPSTORE_API_MAX_PAGE_SIZE = env_int("HEPSTORE_API_MAX_PAGE_SIZE", 100)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [
        "hepstore.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "hepstore.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["hepstore.api.filters.FilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["hepstore.api.throttles.ScopedClientThrottle"],
    # Proxies in front of the server whose X-Forwarded-For entries are trusted to name the
    # client (0: the socket's address; a client cannot choose its own address).
    "NUM_PROXIES": env_int("HEPSTORE_NUM_PROXIES", 0),
    "PAGE_SIZE": 25,
    "DEFAULT_SCHEMA_CLASS": "hepstore.api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "hepstore.api.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "HEP likelihood portal API",
    "DESCRIPTION": "Archive, validation and reinterpretation of HistFactory likelihoods.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components: an upload is binary in a request.
    "COMPONENT_SPLIT_REQUEST": True,
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
