"""The FastAPI dependencies handlers use, in one import: runtime, settings, session, client.

The definitions live in ``smsgateway.scope`` (request scope, no domain) and
``smsgateway.clients.auth`` (the calling client); ``clients`` itself imports those,
never this module, so the two packages do not import each other.
"""

from smsgateway.clients.auth import ClientDep, current_client
from smsgateway.scope import (
    RuntimeDep,
    SessionDep,
    SettingsDep,
    check_admin,
    get_runtime,
    get_session,
    get_settings_dep,
    require_admin,
    runtime_of,
)

__all__ = [
    "ClientDep",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "check_admin",
    "current_client",
    "get_runtime",
    "get_session",
    "get_settings_dep",
    "require_admin",
    "runtime_of",
]
