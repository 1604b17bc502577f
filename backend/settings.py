"""Canopy's one settings module: every value comes from the environment (see README), read
through ``backend.envconfig``. Importing it starts nothing: the embedded PostgreSQL and Redis of
development are started by ``python -m backend.embedded exec -- CMD`` (``make run``, ``make
test``), which passes their URLs down."""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
import structlog
from django.core.exceptions import ImproperlyConfigured

from backend import embedded
from backend.clientaddr import meta_key
from backend.envconfig import (
    data_dir,
    env_bool,
    env_hostport,
    env_int,
    env_list,
    env_required,
    env_str,
)
from backend.observability.logs import PRE_CHAIN as LOG_PRE_CHAIN

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir()

DEBUG = env_bool("DEBUG", False)


def _start_embedded(server: str) -> str:
    return (
        f"no embedded {server} is running for {DATA_DIR} either. Run Canopy with `make run` (the"
        " suite with `make test`), or one command with `.venv/bin/python -m backend.embedded exec"
        " -- CMD` (e.g. `... exec -- .venv/bin/python manage.py migrate`): these start the"
        " embedded PostgreSQL and Redis. Or set it to your own server's URL."
    )


# Unset, these name the embedded servers already running for this data folder, so that a
# `manage.py` command beside `make run` finds them; settings never start one.
DATABASE_URL = env_required(
    "DATABASE_URL",
    fallback=lambda: embedded.postgres_url_if_running(DATA_DIR),
    missing=_start_embedded("PostgreSQL"),
)
REDIS_URL = env_required(
    "REDIS_URL",
    fallback=lambda: embedded.redis_url_if_running(DATA_DIR),
    missing=_start_embedded("Redis"),
)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # Development: generate once and keep it in the data folder so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
PUBLIC_URL = (env_str("CANOPY_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
OTLP_GRPC_BIND = env_hostport("CANOPY_OTLP_GRPC_BIND", "127.0.0.1:4317")
# What `make run` (backend/runner.py) starts: where it serves, how many of each process.
RUN_BIND = env_hostport("CANOPY_BIND", "127.0.0.1:8000")
# `make run` writes the demo credentials here (mode 0600) instead of printing them.
RUN_CREDENTIALS_FILE = env_str("CANOPY_CREDENTIALS_FILE")
RUN_WEB_WORKERS = env_int("CANOPY_WEB_WORKERS", 2, minimum=1)
RUN_WORKER_CONCURRENCY = env_int("CANOPY_WORKER_CONCURRENCY", 2, minimum=1)
# Ingest on web workers of its own (as Mimir's distributors apart from its queriers): with
# CANOPY_INGEST_BIND set, `make run` starts a second gunicorn there (CANOPY_INGEST_WORKERS
# processes); point remote-write/OTLP-HTTP senders at it and their requests (a noisy tenant's
# too) never take a thread or the GIL of the workers that answer queries and pages. The main
# address still accepts ingest as well. Unset: one pool for everything.
RUN_INGEST_BIND = (
    env_hostport("CANOPY_INGEST_BIND", "127.0.0.1:0") if env_str("CANOPY_INGEST_BIND") else None
)
RUN_INGEST_WORKERS = env_int("CANOPY_INGEST_WORKERS", 2, minimum=1)
# CPU priority (nice) of the background work `make run` starts: the Celery worker (outbox
# drain, rules, maintenance) and the ingest pool above. Queries and pages stay at 0, so on a
# busy machine the work a user waits for is scheduled first; the drain's lag is what gives.
RUN_BACKGROUND_NICE = env_int("CANOPY_BACKGROUND_NICE", 0, minimum=0)
# The agent API's own async server (backend/meshconfig/agent_server.py): long polls of the
# mesh agents, one connection each, no thread each.
AGENT_API_BIND = env_hostport("CANOPY_AGENT_BIND", "127.0.0.1:8001")
AGENT_API_MAX_CONNECTIONS = env_int("CANOPY_AGENT_MAX_CONNECTIONS", 5000, minimum=10)
AGENT_API_DB_THREADS = env_int("CANOPY_AGENT_DB_THREADS", 4, minimum=1)


def _agent_public_url() -> str:
    # Where agents reach the agent server: by default the public host on the agent port.
    from urllib.parse import urlsplit

    public = urlsplit(PUBLIC_URL)
    port = AGENT_API_BIND.rpartition(":")[2]
    host = public.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{public.scheme}://{host}:{port}"


AGENT_PUBLIC_URL = (env_str("CANOPY_AGENT_PUBLIC_URL") or _agent_public_url()).rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PUBLIC_URL])

try:
    _db = environ.Env.db_url_config(DATABASE_URL)
except (ValueError, KeyError) as exc:  # pragma: no cover - message is the point
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
if _db["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Canopy needs PostgreSQL: DATABASE_URL must be postgres://...")
_db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
_db["CONN_HEALTH_CHECKS"] = True
_db.setdefault("TEST", {})["NAME"] = env_str("DATABASE_TEST_NAME") or "test_canopy"
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django.contrib.postgres",
    "backend.tenancy",
    "backend.pipeline",
    "backend.metrics",
    "backend.tracing",
    "backend.meshconfig",
    "backend.rules",
    "web",
    "django.contrib.humanize",
    "backend.observability",
    "csp",
]

MIDDLEWARE = [
    "backend.observability.request_id.RequestIdMiddleware",
    "backend.observability.metrics.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "backend.urls"
WSGI_APPLICATION = "backend.wsgi.application"
ASGI_APPLICATION = "backend.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context.current_org",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:login"

# The client's address (backend/clientaddr.py), for sign-up's per-address rate limit and
# axes' lockouts alike: REMOTE_ADDR unless Canopy runs behind CANOPY_TRUSTED_PROXIES reverse
# proxies of its own (each appending to X-Forwarded-For, or CANOPY_CLIENT_ADDRESS_HEADER).
# 0 (the default) trusts no forwarded header: a client could otherwise choose its address.
CANOPY_TRUSTED_PROXIES = env_int("CANOPY_TRUSTED_PROXIES", 0, minimum=0)
try:
    CANOPY_CLIENT_ADDRESS_META = meta_key(
        env_str("CANOPY_CLIENT_ADDRESS_HEADER") or "X-Forwarded-For"
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"CANOPY_CLIENT_ADDRESS_HEADER: {exc}") from None

# Brute-force protection: lock a username+IP pair after 5 failures for 15 minutes.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "web/locked_out.html"
# the same client address as sign-up's rate limit (axes would read REMOTE_ADDR, or
# django-ipware's own proxy settings if that were installed)
AXES_CLIENT_IP_CALLABLE = "backend.clientaddr.client_address"

# Sessions and CSRF: secure cookies whenever Canopy is served over HTTPS.
_https = PUBLIC_URL.startswith("https://")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _https)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 14 * 24 * 3600
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _https else None
SECURE_HSTS_SECONDS = 31536000 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _https)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _https)
# Over HTTPS, plain HTTP is redirected, except the probes and the scrape (cluster-internal).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Content-Security-Policy (django-csp): scripts only from Canopy itself (no inline script,
# no inline handlers: web/static/web/behaviours.js), styles from itself plus inline style
# attributes (bar widths), no framing, no plugins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX") or "canopy",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}


def _celery_broker(url: str) -> str:
    # redis-py spells UNIX sockets unix://path; kombu spells them redis+socket://path.
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = _celery_broker(REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task gets its task redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task taken by a worker that dies unacknowledged is handed out again after this long.
# Workers look for such abandoned tasks every second (one cheap ZRANGE), not kombu's ~100 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300, minimum=1),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
# An outbox drain is queued this long after the first batch that needs it: the batches that
# arrive meanwhile are drained together (fewer, larger blocks; much less worker CPU per sample
# than one drain per request), at the price of this much more delay before data is queryable.
# Metrics only: trace drains are queued at once (their drains run side by side, see
# backend.pipeline.registry.SignalStore.side_by_side).
INGEST_DRAIN_DELAY_SECONDS = env_int("CANOPY_DRAIN_DELAY_MS", 250, minimum=0) / 1000
CELERY_TASK_DEFAULT_QUEUE = "default"
# The PromQL results cache (backend/metrics/results_cache.py): range-query steps older than the
# org's out-of-order window, kept in Redis per (org, query, step); off: every step evaluated.
PROMQL_RESULTS_CACHE = env_bool("CANOPY_PROMQL_RESULTS_CACHE", True)
PROMQL_RESULTS_CACHE_TTL_SECONDS = env_int(
    "CANOPY_PROMQL_RESULTS_CACHE_TTL_SECONDS", 6 * 3600, minimum=1
)
PROMQL_RESULTS_CACHE_MAX_ENTRY_BYTES = env_int(
    "CANOPY_PROMQL_RESULTS_CACHE_MAX_ENTRY_BYTES", 4 * 1024 * 1024, minimum=0
)
# Decoded sample blocks kept per process for later queries (backend/metrics/storage/
# block_cache.py): a chunk cache, bounded in bytes; 0 turns it off.
PROMQL_BLOCK_CACHE_BYTES = env_int("CANOPY_PROMQL_BLOCK_CACHE_MB", 128, minimum=0) * 1024 * 1024
# The mesh graph kept in Redis per (org, grouping, window, time) this long (0: off); see
# backend/metrics/mesh_cache.py.
MESH_GRAPH_CACHE_SECONDS = env_int("CANOPY_MESH_GRAPH_CACHE_SECONDS", 10, minimum=0)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = False
# How often beat looks for due rule groups (each group runs on its own interval).
RULES_TICK_SECONDS = env_int("CANOPY_RULES_TICK_MS", 1000, minimum=100) / 1000
# Prometheus's --rules.alert.resend-delay: the least time between two sends of one alert.
RULES_RESEND_DELAY_MS = env_int("CANOPY_RULES_RESEND_DELAY_SECONDS", 60, minimum=1) * 1000
# May a tenant's Alertmanager or webhook URL name a loopback, private, link-local or otherwise
# non-public address? Off in production (an https CANOPY_PUBLIC_URL): the workers would post to
# the operator's own network on a tenant's say (SSRF). On for a local `make run`.
ALERTING_PRIVATE_TARGETS = env_bool("CANOPY_ALERTING_PRIVATE_TARGETS", not _https)
CELERY_BEAT_SCHEDULE = {
    "pipeline-sweep-outbox": {"task": "backend.pipeline.tasks.sweep_outbox", "schedule": 15.0},
    "pipeline-retention": {"task": "backend.pipeline.tasks.apply_retention", "schedule": 3600.0},
    "metrics-compact-blocks": {"task": "backend.metrics.tasks.compact_blocks", "schedule": 30.0},
    "traces-dependencies": {
        "task": "backend.tracing.tasks.rollup_dependencies",
        "schedule": 30.0,
    },
    "rules-schedule-due": {
        "task": "backend.rules.tasks.schedule_due",
        "schedule": RULES_TICK_SECONDS,
    },
    "traces-cut-blocks": {"task": "backend.tracing.tasks.cut_blocks", "schedule": 60.0},
    "tenancy-purge-deleted-orgs": {
        "task": "backend.tenancy.tasks.purge_deleted_orgs",
        "schedule": 60.0,
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "backend.tenancy.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    # DRF's defaults, with JSON nested too deeply a 400 instead of a RecursionError
    "DEFAULT_PARSER_CLASSES": [
        "backend.tenancy.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # JSON only: DRF's browsable API (HTML forms for every endpoint) only with DEBUG.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Canopy API",
    "DESCRIPTION": (
        "The HTTP APIs of Canopy, the hosted observability backend for service meshes: "
        "ingest (Prometheus remote write, OTLP/HTTP, Zipkin), the Prometheus, Jaeger and "
        "Zipkin query APIs, and the management API.\n\n"
        "**Authentication.** Senders and Grafana use an API token: `Authorization: Bearer "
        "<token>`, or basic auth with the org's slug as username and the token as password. "
        "From this page, *Try it out* uses your dashboard session instead: requests act for "
        "the organization named at the top of the page (add `?org=<slug>` to a request to "
        "pick another of yours), and unsafe methods carry the CSRF token. The ingest "
        "endpoints take tokens only."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc assets come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and its viewers are for signed-in users and tokens, not the public.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular hooks schema generation into `check --deploy`: its warnings are about
    # how it introspects the Jaeger/Zipkin views (their shapes are the protocols', documented
    # in docs/), not about deployment. tests/tenancy/test_api.py checks the schema itself.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # The ingest receivers are plain Django views: their paths are added by a hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "backend.api_schema.ingest_paths",
    ],
}

LOG_LEVEL = env_str("LOG_LEVEL") or "INFO"
LOG_FORMAT = env_str("LOG_FORMAT") or "console"
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use console or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # One line per event with the request id; tracebacks without local variables.
        "structured": {"()": "backend.observability.logs.log_formatter", "format": LOG_FORMAT},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"axes": {"level": "WARNING"}},
}
structlog.configure(
    processors=[
        *LOG_PRE_CHAIN,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)

# /metrics (Canopy's own health for Prometheus): a bearer token when set, open when unset.
METRICS_TOKEN = env_str("CANOPY_METRICS_TOKEN")

# Invitations (backend/tenancy: members join by an emailed, expiring link).
INVITATION_TTL_SECONDS = env_int("CANOPY_INVITATION_TTL_HOURS", 72, minimum=1) * 3600
# Open sign-up: anyone may create an account and their own org at /signup (a link emailed
# first). Off unless set (production); `make run` turns it on. Invitees can always create an
# account through their invitation link, whatever this says.
SIGNUP_ENABLED = env_bool("CANOPY_SIGNUP", False)
# Mail: SMTP when CANOPY_SMTP_HOST is set; otherwise messages are written to the console
# (development: the invitation link appears in `make run`'s output).
EMAIL_HOST = env_str("CANOPY_SMTP_HOST") or "localhost"
EMAIL_PORT = env_int("CANOPY_SMTP_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("CANOPY_SMTP_USER") or ""
EMAIL_HOST_PASSWORD = env_str("CANOPY_SMTP_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("CANOPY_SMTP_TLS", True)
DEFAULT_FROM_EMAIL = env_str("CANOPY_MAIL_FROM") or "canopy@localhost"
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("CANOPY_SMTP_HOST")
    else "django.core.mail.backends.console.EmailBackend"
)
