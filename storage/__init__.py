"""FlowLoom's storage: SQLAlchemy models, migrations, repositories and credential encryption.

    from storage import Database

    db = await Database.open(url, data_dir=data_dir, secret_key=key)
    db.flows, db.runs, db.runtimes, db.credentials, db.triggers, db.memory, db.subscriptions;
    await db.prune()

Storage imports nothing of FlowLoom's other packages and hands back the plain records of
`storage.records`, never SQLAlchemy objects.
"""

from storage.database import Database
from storage.records import (
    RUN_STATUSES,
    UNFINISHED,
    CredentialInfo,
    DeliveryRecord,
    DuplicateName,
    FlowRecord,
    FlowVersionRecord,
    NotFound,
    RunRecord,
    RuntimeRecord,
    StepRow,
    StorageError,
    SubscriptionRecord,
    VersionConflict,
)

__all__ = [
    "RUN_STATUSES",
    "UNFINISHED",
    "CredentialInfo",
    "Database",
    "DeliveryRecord",
    "DuplicateName",
    "FlowRecord",
    "FlowVersionRecord",
    "NotFound",
    "RunRecord",
    "RuntimeRecord",
    "StepRow",
    "StorageError",
    "SubscriptionRecord",
    "VersionConflict",
]
