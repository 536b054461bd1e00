"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from flotilla.core.fastapi import db_session, read_session

#: A session for a request that writes (``BEGIN IMMEDIATE`` on SQLite).
DbSession = Annotated[Session, Depends(db_session)]
#: A session for a request that only reads (never queues behind writers on SQLite).
ReadSession = Annotated[Session, Depends(read_session)]
