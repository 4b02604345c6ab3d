"""Store URLs for PostgreSQL: ``postgresql://[user@][host][:port]/dbname?…&schema=NAME``.

``schema`` is agentkeep's own parameter (default ``agentkeep``): every table of one store
lives in that PostgreSQL schema, so one database can hold several projects' stores. It is
taken out before the rest goes to libpq. A password never belongs in a URL agentkeep keeps
(config.toml is a file in the project): :func:`check_storable` refuses one; libpq reads it
from ``PGPASSWORD``, ``~/.pgpass`` or a service file instead.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from agentkeep.errors import InvalidInput

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "agentkeep"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = {"information_schema"}  # PostgreSQL's own (and pg_… below)
_SECRET_PARAMS = {"password", "sslpassword"}


def is_url(text: object) -> bool:
    """Whether ``text`` names a PostgreSQL store (rather than a directory)."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def split_url(url: str) -> tuple[str, str]:
    """``(conninfo for libpq, schema name)``; InvalidInput for a URL agentkeep cannot use."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidInput(
            f"not a PostgreSQL URL: {redacted(url)}",
            hint="use postgresql://[user@]host[:port]/dbname[?schema=NAME]",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_") or schema in _RESERVED:
        raise InvalidInput(
            f"schema={schema!r} is not a usable schema name",
            hint="lower-case letters, digits and underscores, starting with a letter or _; "
            "not pg_… or information_schema",
        )
    conninfo = _join(
        "postgresql", parts.netloc, parts.path, urlencode(kept, safe="/", quote_via=quote)
    )
    return conninfo, schema


def check_storable(url: str) -> str:
    """``url`` if it may be written to agentkeep's files: valid, and without a password."""
    split_url(url)
    if urlsplit(url).password is not None or any(
        key in _SECRET_PARAMS for key, _ in parse_qsl(urlsplit(url).query)
    ):
        raise InvalidInput(
            "the store URL holds a password; agentkeep never writes credentials to its files",
            hint="remove it from the URL and give it to libpq instead: PGPASSWORD, ~/.pgpass "
            "or a pg_service.conf entry",
        )
    return url


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urlencode(
        [(k, "***" if k in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, True)],
        safe="*/",  # password=*** as people write it, not %2A%2A%2A
        quote_via=quote,
    )
    return _join(parts.scheme, netloc, parts.path, query)


def _join(scheme: str, netloc: str, path: str, query: str) -> str:
    # Not urlunsplit: with no host (a Unix socket given in ?host=) it drops the "//".
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
