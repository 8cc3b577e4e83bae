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
    "django_filters",
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

ELASTICSEARCH_URL = env_str("ELASTICSEARCH_URL", "")
REDIS_URL = env_str("REDIS_URL", "")

# Fitter/jobs limits.
REINTERPRET_MAX_CONCURRENT_FITS = env_int("REINTERPRET_MAX_CONCURRENT_FITS", 2)
REINTERPRET_MAX_QUEUED_JOBS = env_int("REINTERPRET_MAX_QUEUED_JOBS", 50)
# Pending (queued + running) jobs one client (user or address) may have.
REINTERPRET_MAX_QUEUED_PER_CLIENT = env_int("REINTERPRET_MAX_QUEUED_PER_CLIENT", 5)
# Retry-After (seconds) sent with a 429 for a full queue.
REINTERPRET_RETRY_AFTER_SECONDS = env_int("REINTERPRET_RETRY_AFTER_SECONDS", 30)
# A custom signal is fitted inside the request only when the likelihood's recent fits took
# at most this much CPU time (s), and at most REINTERPRET_MAX_SYNC_FITS at once per process;
# otherwise it becomes a job.
REINTERPRET_SYNC_FIT_CPU_SECONDS = float(env_str("REINTERPRET_SYNC_FIT_CPU_SECONDS", "2.0"))
REINTERPRET_MAX_SYNC_FITS = env_int("REINTERPRET_MAX_SYNC_FITS", 2)
# Cached results of custom signals expire, and only the newest so many are kept.
REINTERPRET_CUSTOM_CACHE_TTL_HOURS = env_int("REINTERPRET_CUSTOM_CACHE_TTL_HOURS", 168)
REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES = env_int("REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES", 10000)
REINTERPRET_MEMORY_BUDGET_MB = env_int("REINTERPRET_MEMORY_BUDGET_MB", 2048)
# A running job whose heartbeat is older than this is taken to be orphaned and re-queued.
REINTERPRET_STALE_SECONDS = env_int("REINTERPRET_STALE_SECONDS", 60)
# Signal points a scan evaluates per batch (and writes per progress step).
REINTERPRET_SCAN_CHUNK = env_int("REINTERPRET_SCAN_CHUNK", 32)

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
