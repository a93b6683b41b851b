"""The whole schema: imports every domain's models so Alembic and the drift test see all of it."""

from app.auth import models as auth_models  # noqa: F401
from app.clinics import models as clinic_models  # noqa: F401
from app.db import Base

metadata = Base.metadata
