"""The whole schema: imports every domain's models so Alembic and the drift test see all of it."""

from app.audit import models as audit_models  # noqa: F401
from app.auth import models as auth_models  # noqa: F401
from app.billing import models as billing_models  # noqa: F401
from app.clinical import models as clinical_models  # noqa: F401
from app.clinics import models as clinic_models  # noqa: F401
from app.counters import ClinicCounter  # noqa: F401
from app.db import Base
from app.messaging import models as messaging_models  # noqa: F401
from app.patients import models as patient_models  # noqa: F401
from app.scheduling import models as scheduling_models  # noqa: F401
from app.security import models as security_models  # noqa: F401
from app.timeline import models as timeline_models  # noqa: F401

metadata = Base.metadata
