"""scheduling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Clinic hours and day overrides, doctors' weekly sessions and exceptions, appointment types,
appointments with their append-only history, and the exclusion constraint that makes PostgreSQL
refuse two overlapping appointments of one doctor.
"""

import sqlalchemy as sa
from alembic import op

from app.config import APP_DB_ROLE
from app.security import rls

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ["clinic_hours", "clinic_day", "appointment_type", "doctor_session", "doctor_exception", "appointment",
          "appointment_event"]


def upgrade() -> None:
    op.create_table('clinic_hours',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('opens', sa.Time(), nullable=False),
    sa.Column('closes', sa.Time(), nullable=False),
    sa.CheckConstraint('closes > opens', name=op.f('ck_clinic_hours_opens_before_closes')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_clinic_hours_weekday')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_clinic_hours_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'weekday', name=op.f('pk_clinic_hours'))
    )
    op.create_table('clinic_day',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=120), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_clinic_day_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_clinic_day_created_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'day', name=op.f('pk_clinic_day'))
    )
    op.create_table('appointment_type',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('duration_minutes', sa.SmallInteger(), nullable=False),
    sa.Column('colour', sa.String(length=7), nullable=False),
    sa.Column('billable_item', sa.String(length=80), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('duration_minutes BETWEEN 5 AND 480', name=op.f('ck_appointment_type_duration')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_appointment_type_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_appointment_type'))
    )
    op.create_table('doctor_session',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('starts', sa.Time(), nullable=False),
    sa.Column('ends', sa.Time(), nullable=False),
    sa.Column('slot_minutes', sa.SmallInteger(), nullable=False),
    sa.Column('room', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.CheckConstraint('ends > starts', name=op.f('ck_doctor_session_starts_before_ends')),
    sa.CheckConstraint('slot_minutes BETWEEN 5 AND 240', name=op.f('ck_doctor_session_slot_minutes')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_doctor_session_weekday')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_doctor_session_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['doctor_id'], ['staff_user.id'], name=op.f('fk_doctor_session_doctor_id_staff_user')),
    sa.ForeignKeyConstraint(['updated_by'], ['staff_user.id'], name=op.f('fk_doctor_session_updated_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_doctor_session'))
    )
    op.create_index('ix_doctor_session_doctor', 'doctor_session', ['clinic_id', 'doctor_id', 'weekday'], unique=False)
    op.create_table('doctor_exception',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('leave', 'extra', name='exceptionkind', native_enum=False, length=8), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('starts', sa.Time(), nullable=True),
    sa.Column('ends', sa.Time(), nullable=True),
    sa.Column('slot_minutes', sa.SmallInteger(), nullable=True),
    sa.Column('room', sa.String(length=40), nullable=True),
    sa.Column('note', sa.String(length=120), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(starts IS NULL) = (ends IS NULL) AND (ends IS NULL OR ends > starts)",
                       name=op.f('ck_doctor_exception_hours')),
    sa.CheckConstraint("kind <> 'extra' OR (starts IS NOT NULL AND slot_minutes IS NOT NULL "
                       "AND first_day = last_day)", name=op.f('ck_doctor_exception_extra_has_hours')),
    sa.CheckConstraint('last_day >= first_day', name=op.f('ck_doctor_exception_days_in_order')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_doctor_exception_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_doctor_exception_created_by_staff_user')),
    sa.ForeignKeyConstraint(['doctor_id'], ['staff_user.id'], name=op.f('fk_doctor_exception_doctor_id_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_doctor_exception'))
    )
    op.create_index('ix_doctor_exception_days', 'doctor_exception', ['clinic_id', 'doctor_id', 'first_day', 'last_day'],
                    unique=False)
    op.create_table('appointment',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=False),
    sa.Column('type_id', sa.Uuid(), nullable=True),
    sa.Column('walk_in', sa.Boolean(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.Enum('booked', 'confirmed', 'arrived', 'in_consultation', 'completed', 'cancelled',
                                'no_show', 'rescheduled', name='status', native_enum=False, length=16), nullable=False),
    sa.Column('token', sa.Integer(), nullable=True),
    sa.Column('room', sa.String(length=40), nullable=True),
    sa.Column('reason_enc', sa.LargeBinary(), nullable=True),
    sa.Column('overbooked', sa.Boolean(), nullable=False),
    sa.Column('rescheduled_from', sa.Uuid(), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.CheckConstraint('(starts_at IS NULL) = (ends_at IS NULL) AND (ends_at IS NULL OR ends_at > starts_at)',
                       name=op.f('ck_appointment_slot_times')),
    sa.CheckConstraint('walk_in = (starts_at IS NULL)', name=op.f('ck_appointment_walk_in_has_no_slot')),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'],
                            name=op.f('fk_appointment_clinic_id_patient')),
    sa.ForeignKeyConstraint(['clinic_id', 'rescheduled_from'], ['appointment.clinic_id', 'appointment.id'],
                            name=op.f('fk_appointment_clinic_id_appointment')),
    sa.ForeignKeyConstraint(['clinic_id', 'type_id'], ['appointment_type.clinic_id', 'appointment_type.id'],
                            name=op.f('fk_appointment_clinic_id_appointment_type')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_appointment_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_appointment_created_by_staff_user')),
    sa.ForeignKeyConstraint(['doctor_id'], ['staff_user.id'], name=op.f('fk_appointment_doctor_id_staff_user')),
    sa.ForeignKeyConstraint(['updated_by'], ['staff_user.id'], name=op.f('fk_appointment_updated_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_appointment'))
    )
    op.create_index('ix_appointment_day', 'appointment', ['clinic_id', 'day', 'doctor_id'], unique=False)
    op.create_index('ix_appointment_doctor', 'appointment', ['clinic_id', 'doctor_id', 'starts_at'], unique=False)
    op.create_index('ix_appointment_patient', 'appointment', ['clinic_id', 'patient_id', 'starts_at'], unique=False)
    op.create_index('ix_appointment_token', 'appointment', ['clinic_id', 'day', 'token'], unique=True,
                    postgresql_where='token IS NOT NULL')
    op.create_table('appointment_event',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('detail_enc', sa.LargeBinary(), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['by'], ['staff_user.id'], name=op.f('fk_appointment_event_by_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id', 'appointment_id'], ['appointment.clinic_id', 'appointment.id'],
                            name=op.f('fk_appointment_event_clinic_id_appointment')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_appointment_event'))
    )
    op.create_index('ix_appointment_event_appointment', 'appointment_event', ['clinic_id', 'appointment_id', 'at'],
                    unique=False)

    statements = [
        # Bootstrap installs it as the admin; this only checks, so a database without it fails loudly here.
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'btree_gist') THEN "
        "RAISE EXCEPTION 'the btree_gist extension is needed (flask migrate installs it)'; END IF; END $$",
        # Two appointments of one doctor that both hold their time may not overlap. Overbooked ones
        # (a stated, audited decision) and walk-ins (no slot) stand outside the rule.
        "ALTER TABLE appointment ADD CONSTRAINT ex_appointment_no_overlap EXCLUDE USING gist "
        "(clinic_id WITH =, doctor_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) "
        "WHERE (starts_at IS NOT NULL AND NOT overbooked "
        "AND status IN ('booked', 'confirmed', 'arrived', 'in_consultation', 'completed'))",
    ]
    for table in TABLES:
        statements += rls.clinic_isolation(table)
    statements += rls.grant_dml("clinic_hours", "clinic_day", "doctor_session", "doctor_exception")
    statements += rls.grant("SELECT, INSERT, UPDATE", "appointment_type", "appointment")
    # History is append-only, except re-sealing under a newer key (rotation): only the sealed column and
    # its key version may be updated, and a sealed value can be neither added nor erased.
    statements += [
        f"GRANT SELECT, INSERT ON appointment_event TO {APP_DB_ROLE}",
        f"GRANT UPDATE (detail_enc, key_version) ON appointment_event TO {APP_DB_ROLE}",
        """CREATE FUNCTION appointment_event_reseal_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'UPDATE'
             AND (NEW.clinic_id, NEW.id, NEW.appointment_id, NEW.action, NEW.from_status, NEW.to_status, NEW.at,
                  NEW."by")
                 IS NOT DISTINCT FROM (OLD.clinic_id, OLD.id, OLD.appointment_id, OLD.action, OLD.from_status,
                  OLD.to_status, OLD.at, OLD."by")
             AND (NEW.detail_enc IS NULL) = (OLD.detail_enc IS NULL)
             AND NEW.key_version > OLD.key_version THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION '% is append-only (only re-sealing under a newer key is allowed)', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
        END $$""",
        "CREATE TRIGGER appointment_event_append_only BEFORE UPDATE OR DELETE ON appointment_event "
        "FOR EACH ROW EXECUTE FUNCTION appointment_event_reseal_only()",
    ]
    statements += rls.no_truncate("appointment_event")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER appointment_event_no_truncate ON appointment_event")
    op.execute("DROP TRIGGER appointment_event_append_only ON appointment_event")
    op.execute("DROP FUNCTION appointment_event_reseal_only()")
    op.drop_table('appointment_event')
    op.drop_table('appointment')
    op.drop_table('doctor_exception')
    op.drop_table('doctor_session')
    op.drop_table('appointment_type')
    op.drop_table('clinic_day')
    op.drop_table('clinic_hours')
