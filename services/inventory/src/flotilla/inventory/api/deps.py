from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from flotilla.core.fastapi import db_session, read_session

DbSession = Annotated[Session, Depends(db_session)]
ReadSession = Annotated[Session, Depends(read_session)]
