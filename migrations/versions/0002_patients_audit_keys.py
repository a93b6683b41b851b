"""patients audit keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Patients with encrypted fields and blind-index tokens, record history, consent ledger,
break-the-glass, per-clinic data keys, and the append-only, hash-chained PHI audit trail.
"""

import sqlalchemy as sa
from alembic import op

from app.config import APP_DB_ROLE
from app.security import rls
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("audit_seq")))
    op.create_table('audit_chain',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('chain_hash', sa.String(length=64), nullable=False),
    sa.Column('chained_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_chain_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'position', name=op.f('pk_audit_chain'))
    )
    op.create_index('ix_audit_chain_event', 'audit_chain', ['clinic_id', 'event_id'], unique=True)
    op.create_table('audit_checkpoint',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('chain_hash', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_checkpoint_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'position', name=op.f('pk_audit_checkpoint'))
    )
    op.create_table('audit_event',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.BigInteger(), server_default=sa.text("nextval('audit_seq')"), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=True),
    sa.Column('object_id', sa.Uuid(), nullable=True),
    sa.Column('patient_id', sa.Uuid(), nullable=True),
    sa.Column('patient_ids', postgresql.ARRAY(sa.UUID()), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('ip', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('mac', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_event_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_audit_event_user_id_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_audit_event')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_event_seq'))
    )
    op.create_index('ix_audit_event_clinic_at', 'audit_event', ['clinic_id', 'at'], unique=False)
    op.create_index('ix_audit_event_clinic_patient_at', 'audit_event', ['clinic_id', 'patient_id', 'at'], unique=False)
    op.create_index('ix_audit_event_clinic_seq', 'audit_event', ['clinic_id', 'seq'], unique=False)
    op.create_index('ix_audit_event_patient_ids', 'audit_event', ['patient_ids'], unique=False,
                    postgresql_using='gin')
    op.create_table('clinic_counter',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_clinic_counter_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'name', name=op.f('pk_clinic_counter'))
    )
    op.create_table('clinic_key',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_clinic_key_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'version', name=op.f('pk_clinic_key'))
    )
    op.create_table('patient',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('mrn_enc', sa.LargeBinary(), nullable=False),
    sa.Column('full_name_enc', sa.LargeBinary(), nullable=False),
    sa.Column('sex_enc', sa.LargeBinary(), nullable=False),
    sa.Column('dob_enc', sa.LargeBinary(), nullable=False),
    sa.Column('dob_estimated', sa.Boolean(), nullable=False),
    sa.Column('phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('alt_phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('email_enc', sa.LargeBinary(), nullable=True),
    sa.Column('address_line_enc', sa.LargeBinary(), nullable=True),
    sa.Column('city_enc', sa.LargeBinary(), nullable=True),
    sa.Column('pin_code_enc', sa.LargeBinary(), nullable=True),
    sa.Column('abha_number_enc', sa.LargeBinary(), nullable=True),
    sa.Column('guardian_name_enc', sa.LargeBinary(), nullable=True),
    sa.Column('guardian_relation_enc', sa.LargeBinary(), nullable=True),
    sa.Column('guardian_phone_enc', sa.LargeBinary(), nullable=True),
    sa.Column('state_code', sa.String(length=2), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_patient_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_patient_created_by_staff_user')),
    sa.ForeignKeyConstraint(['updated_by'], ['staff_user.id'], name=op.f('fk_patient_updated_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_patient'))
    )
    op.create_table('break_glass',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_break_glass_clinic_id_patient')),
    sa.ForeignKeyConstraint(['reviewed_by'], ['staff_user.id'], name=op.f('fk_break_glass_reviewed_by_staff_user')),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_break_glass_user_id_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_break_glass'))
    )
    op.create_index('ix_break_glass_user_patient', 'break_glass', ['clinic_id', 'user_id', 'patient_id', 'expires_at'], unique=False)
    op.create_table('consent_event',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=24), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_consent_event_clinic_id_patient')),
    sa.ForeignKeyConstraint(['recorded_by'], ['staff_user.id'], name=op.f('fk_consent_event_recorded_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_consent_event'))
    )
    op.create_index('ix_consent_event_patient', 'consent_event', ['clinic_id', 'patient_id', 'purpose', 'at'], unique=False)
    op.create_table('patient_history',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('changed_fields', sa.String(length=400), nullable=False),
    sa.Column('changes_enc', sa.LargeBinary(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by'], ['staff_user.id'], name=op.f('fk_patient_history_changed_by_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_patient_history_clinic_id_patient')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_patient_history'))
    )
    op.create_index('ix_patient_history_patient', 'patient_history', ['clinic_id', 'patient_id', 'version'], unique=False)
    op.create_table('patient_token',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('key_version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('token', sa.String(length=24), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_patient_token_clinic_id_patient'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('clinic_id', 'patient_id', 'key_version', 'token', name=op.f('pk_patient_token'))
    )
    op.create_index('ix_patient_token_lookup', 'patient_token', ['clinic_id', 'token'], unique=False)

    op.create_table('audit_verification',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('problem', sa.String(length=500), nullable=True),
    sa.Column('chained', sa.BigInteger(), nullable=False),
    sa.Column('unchained', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_position', sa.BigInteger(), nullable=True),
    sa.Column('checked_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['checked_by'], ['staff_user.id'], name=op.f('fk_audit_verification_checked_by_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_verification_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_audit_verification'))
    )
    op.create_index('ix_audit_verification_clinic_at', 'audit_verification', ['clinic_id', 'checked_at'], unique=False)

    clinic_tables = ["clinic_key", "patient", "patient_token", "patient_history", "consent_event",
                     "clinic_counter", "break_glass", "audit_event", "audit_chain", "audit_checkpoint",
                     "audit_verification"]
    statements = [f"GRANT USAGE ON SEQUENCE audit_seq TO {APP_DB_ROLE}"]
    for table in clinic_tables:
        statements += rls.clinic_isolation(table)
    statements += rls.grant("SELECT, INSERT, UPDATE", "clinic_key", "patient", "clinic_counter")
    # A break-the-glass grant is fixed once opened; only its review may be added, once.
    statements += rls.grant("SELECT, INSERT, UPDATE (reviewed_at, reviewed_by)", "break_glass")
    statements.append("""CREATE FUNCTION break_glass_review_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.reviewed_at IS NULL AND NEW.reviewed_at IS NOT NULL AND NEW.reviewed_by IS NOT NULL THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION 'break_glass can only be reviewed once' USING ERRCODE = 'insufficient_privilege';
        END $$""")
    statements.append("CREATE TRIGGER break_glass_review_once BEFORE UPDATE OR DELETE ON break_glass "
                      "FOR EACH ROW EXECUTE FUNCTION break_glass_review_once()")
    statements += rls.grant("SELECT, INSERT, UPDATE, DELETE", "patient_token")
    for table in ["consent_event", "audit_event", "audit_chain", "audit_checkpoint", "audit_verification"]:
        statements += rls.append_only(table)
    # History is append-only too, except that key rotation may re-seal a row under a newer key:
    # only changes_enc and key_version may change, and only upward.
    statements += [
        f"GRANT SELECT, INSERT ON patient_history TO {APP_DB_ROLE}",
        f"GRANT UPDATE (changes_enc, key_version) ON patient_history TO {APP_DB_ROLE}",
        """CREATE FUNCTION patient_history_reseal_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'UPDATE'
             AND (NEW.clinic_id, NEW.id, NEW.patient_id, NEW.version, NEW.action, NEW.changed_fields,
                  NEW.changed_at, NEW.changed_by)
                 IS NOT DISTINCT FROM (OLD.clinic_id, OLD.id, OLD.patient_id, OLD.version, OLD.action,
                  OLD.changed_fields, OLD.changed_at, OLD.changed_by)
             AND NEW.key_version > OLD.key_version THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION '% is append-only (only re-sealing under a newer key is allowed)', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
        END $$""",
        "CREATE TRIGGER patient_history_append_only BEFORE UPDATE OR DELETE ON patient_history "
        "FOR EACH ROW EXECUTE FUNCTION patient_history_reseal_only()",
    ]
    for table in ["audit_event", "audit_chain", "audit_checkpoint"]:
        statements += rls.no_truncate(table)
    # Jobs that walk every clinic (audit chaining, key rotation) read clinic ids from here: ids only,
    # kept by a trigger, because the clinic table itself is scoped to one clinic per transaction.
    statements += [
        "CREATE TABLE clinic_registry (id uuid PRIMARY KEY)",
        "INSERT INTO clinic_registry SELECT id FROM clinic",
        """CREATE FUNCTION register_clinic() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           SET search_path = public AS $$
           BEGIN INSERT INTO clinic_registry VALUES (NEW.id) ON CONFLICT DO NOTHING; RETURN NEW; END $$""",
        "CREATE TRIGGER clinic_registered AFTER INSERT ON clinic FOR EACH ROW EXECUTE FUNCTION register_clinic()",
        f"GRANT SELECT ON clinic_registry TO {APP_DB_ROLE}",
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('audit_verification')
    op.execute("DROP TRIGGER patient_history_append_only ON patient_history")
    op.execute("DROP FUNCTION patient_history_reseal_only()")
    op.execute("DROP TRIGGER break_glass_review_once ON break_glass")
    op.execute("DROP FUNCTION break_glass_review_once()")
    op.execute("DROP TRIGGER clinic_registered ON clinic")
    op.execute("DROP FUNCTION register_clinic()")
    op.execute("DROP TABLE clinic_registry")
    op.drop_index('ix_patient_token_lookup', table_name='patient_token')
    op.drop_table('patient_token')
    op.drop_index('ix_patient_history_patient', table_name='patient_history')
    op.drop_table('patient_history')
    op.drop_index('ix_consent_event_patient', table_name='consent_event')
    op.drop_table('consent_event')
    op.drop_index('ix_break_glass_user_patient', table_name='break_glass')
    op.drop_table('break_glass')
    op.drop_table('patient')
    op.drop_table('clinic_key')
    op.drop_table('clinic_counter')
    op.drop_index('ix_audit_event_clinic_seq', table_name='audit_event')
    op.drop_index('ix_audit_event_patient_ids', table_name='audit_event')
    op.drop_index('ix_audit_event_clinic_patient_at', table_name='audit_event')
    op.drop_index('ix_audit_event_clinic_at', table_name='audit_event')
    op.drop_table('audit_event')
    op.drop_table('audit_checkpoint')
    op.drop_index('ix_audit_chain_event', table_name='audit_chain')
    op.drop_table('audit_chain')
    op.execute(sa.schema.DropSequence(sa.Sequence("audit_seq")))
