"""clinical records and timeline

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

Encounters with their revisions and addenda, allergies and problems, vitals, prescriptions; a
doctor's professional details; and the timeline feed, filled here from the history already kept
(appointment events, record changes, consent changes).

The database keeps the clinical record honest on its own: `guard_row()` refuses every change to a
row except (a) anything while the row is still editable (`status` 'open' or 'draft', when the
table has one), (b) re-sealing under the clinic's active key (only the sealed columns and
`key_version` change, `key_version` goes up to the active key's version, every sealed value's
header names that key, and none is added or erased), and (c) setting the one-way closing columns
(ended, voided) once. Deletes are refused, except of a prescription still in draft.
"""

import sqlalchemy as sa
from alembic import op

from app.security import rls


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chart_item',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('allergy', 'nka', 'problem', name='chartkind', native_enum=False, length=8), nullable=False),
    sa.Column('details_enc', sa.LargeBinary(), nullable=True),
    sa.Column('encounter_id', sa.Uuid(), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.Uuid(), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.Uuid(), nullable=True),
    sa.Column('end_reason', sa.Enum('resolved', 'error', name='endreason', native_enum=False), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_chart_item_clinic_id_patient')),
    sa.ForeignKeyConstraint(['ended_by'], ['staff_user.id'], name=op.f('fk_chart_item_ended_by_staff_user')),
    sa.ForeignKeyConstraint(['recorded_by'], ['staff_user.id'], name=op.f('fk_chart_item_recorded_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_chart_item'))
    )
    op.create_index('ix_chart_item_patient', 'chart_item', ['clinic_id', 'patient_id', 'kind', 'recorded_at'], unique=False)
    op.create_table('timeline_event',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=True),
    sa.Column('ref_id', sa.Uuid(), nullable=True),
    sa.Column('by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_timeline_event_clinic_id_patient')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_timeline_event'))
    )
    op.create_index('ix_timeline_event_doctor', 'timeline_event', ['clinic_id', 'patient_id', 'doctor_id', 'at', 'id'], unique=False)
    op.create_index('ix_timeline_event_kind', 'timeline_event', ['clinic_id', 'patient_id', 'kind', 'at', 'id'], unique=False)
    op.create_index('ix_timeline_event_page', 'timeline_event', ['clinic_id', 'patient_id', 'at', 'id'], unique=False)
    op.create_table('vitals',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('encounter_id', sa.Uuid(), nullable=True),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.Column('values_enc', sa.LargeBinary(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('taken_by', sa.Uuid(), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_vitals_clinic_id_patient')),
    sa.ForeignKeyConstraint(['taken_by'], ['staff_user.id'], name=op.f('fk_vitals_taken_by_staff_user')),
    sa.ForeignKeyConstraint(['voided_by'], ['staff_user.id'], name=op.f('fk_vitals_voided_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_vitals'))
    )
    op.create_index('ix_vitals_patient', 'vitals', ['clinic_id', 'patient_id', 'taken_at'], unique=False)
    op.create_table('encounter',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('open', 'signed', name='encounterstatus', native_enum=False, length=8), nullable=False),
    sa.Column('subjective_enc', sa.LargeBinary(), nullable=True),
    sa.Column('objective_enc', sa.LargeBinary(), nullable=True),
    sa.Column('assessment_enc', sa.LargeBinary(), nullable=True),
    sa.Column('plan_enc', sa.LargeBinary(), nullable=True),
    sa.Column('diagnoses_enc', sa.LargeBinary(), nullable=True),
    sa.Column('follow_up_on', sa.Date(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sa.Uuid(), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'appointment_id'], ['appointment.clinic_id', 'appointment.id'], name=op.f('fk_encounter_clinic_id_appointment')),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_encounter_clinic_id_patient')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_encounter_created_by_staff_user')),
    sa.ForeignKeyConstraint(['doctor_id'], ['staff_user.id'], name=op.f('fk_encounter_doctor_id_staff_user')),
    sa.ForeignKeyConstraint(['signed_by'], ['staff_user.id'], name=op.f('fk_encounter_signed_by_staff_user')),
    sa.ForeignKeyConstraint(['updated_by'], ['staff_user.id'], name=op.f('fk_encounter_updated_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_encounter'))
    )
    op.create_index('ix_encounter_appointment', 'encounter', ['clinic_id', 'appointment_id'], unique=True, postgresql_where='appointment_id IS NOT NULL')
    op.create_index('ix_encounter_doctor', 'encounter', ['clinic_id', 'doctor_id', 'patient_id'], unique=False)
    op.create_index('ix_encounter_patient', 'encounter', ['clinic_id', 'patient_id', 'started_at'], unique=False)
    op.create_table('encounter_addendum',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('encounter_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('text_enc', sa.LargeBinary(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['by'], ['staff_user.id'], name=op.f('fk_encounter_addendum_by_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id', 'encounter_id'], ['encounter.clinic_id', 'encounter.id'], name=op.f('fk_encounter_addendum_clinic_id_encounter')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_encounter_addendum'))
    )
    op.create_index('ix_encounter_addendum_encounter', 'encounter_addendum', ['clinic_id', 'encounter_id', 'at'], unique=False)
    op.create_table('encounter_revision',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('encounter_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed', sa.String(length=120), nullable=False),
    sa.Column('changes_enc', sa.LargeBinary(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['by'], ['staff_user.id'], name=op.f('fk_encounter_revision_by_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id', 'encounter_id'], ['encounter.clinic_id', 'encounter.id'], name=op.f('fk_encounter_revision_clinic_id_encounter')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_encounter_revision'))
    )
    op.create_index('ix_encounter_revision_encounter', 'encounter_revision', ['clinic_id', 'encounter_id', 'version'], unique=False)
    op.create_table('prescription',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('encounter_id', sa.Uuid(), nullable=False),
    sa.Column('doctor_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('revision', sa.SmallInteger(), nullable=False),
    sa.Column('replaces_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('draft', 'signed', name='rxstatus', native_enum=False, length=8), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('items_enc', sa.LargeBinary(), nullable=True),
    sa.Column('advice_enc', sa.LargeBinary(), nullable=True),
    sa.Column('printed_enc', sa.LargeBinary(), nullable=True),
    sa.Column('code', sa.String(length=16), nullable=True),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['clinic_id', 'encounter_id'], ['encounter.clinic_id', 'encounter.id'], name=op.f('fk_prescription_clinic_id_encounter')),
    sa.ForeignKeyConstraint(['clinic_id', 'patient_id'], ['patient.clinic_id', 'patient.id'], name=op.f('fk_prescription_clinic_id_patient')),
    sa.ForeignKeyConstraint(['clinic_id', 'replaces_id'], ['prescription.clinic_id', 'prescription.id'], name=op.f('fk_prescription_clinic_id_prescription')),
    sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'], name=op.f('fk_prescription_created_by_staff_user')),
    sa.ForeignKeyConstraint(['doctor_id'], ['staff_user.id'], name=op.f('fk_prescription_doctor_id_staff_user')),
    sa.ForeignKeyConstraint(['signed_by'], ['staff_user.id'], name=op.f('fk_prescription_signed_by_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_prescription'))
    )
    op.create_index('ix_prescription_encounter', 'prescription', ['clinic_id', 'encounter_id'], unique=False)
    op.create_index('ix_prescription_patient', 'prescription', ['clinic_id', 'patient_id', 'created_at'], unique=False)
    op.create_index('ix_prescription_replaces', 'prescription', ['clinic_id', 'replaces_id'], unique=True, postgresql_where='replaces_id IS NOT NULL')
    op.add_column('staff_user', sa.Column('qualifications', sa.String(length=120), nullable=True))
    op.add_column('staff_user', sa.Column('speciality', sa.String(length=60), nullable=True))
    op.add_column('staff_user', sa.Column('registration_number', sa.String(length=40), nullable=True))
    op.add_column('staff_user', sa.Column('registration_council', sa.String(length=80), nullable=True))
    for statement in _security() + _backfill():
        op.execute(statement)


TABLES = ["encounter", "encounter_revision", "encounter_addendum", "chart_item", "vitals", "prescription",
          "timeline_event"]
# table: (sealed columns, closing columns, the status value in which the row is still editable)
GUARDED = {
    "encounter": ("subjective_enc,objective_enc,assessment_enc,plan_enc,diagnoses_enc", "", "open"),
    "encounter_revision": ("changes_enc", "", ""),
    "encounter_addendum": ("text_enc", "", ""),
    "chart_item": ("details_enc", "ended_at,ended_by,end_reason", ""),
    "vitals": ("values_enc", "voided_at,voided_by", ""),
    "prescription": ("items_enc,advice_enc,printed_enc", "", "draft"),
}

GUARD_FUNCTION = """
CREATE FUNCTION guard_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  sealed text[] := string_to_array(TG_ARGV[0], ',');
  closing text[] := string_to_array(TG_ARGV[1], ',');
  editable text := TG_ARGV[2];
  o jsonb := to_jsonb(OLD);
  n jsonb;
  c text;
  header bytea;
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF TG_TABLE_NAME = 'prescription' AND o->>'status' = 'draft' THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
  END IF;
  n := to_jsonb(NEW);
  IF editable <> '' AND o->>'status' = editable THEN
    RETURN NEW;
  END IF;
  IF (o - sealed - 'key_version') = (n - sealed - 'key_version')
     AND (n->>'key_version')::int > (o->>'key_version')::int THEN
    -- A re-seal moves a row to the clinic's active key, and every sealed value must say so in its header.
    IF (n->>'key_version')::int IS DISTINCT FROM (SELECT version FROM clinic_key
        WHERE clinic_id = NEW.clinic_id AND status = 'active') THEN
      RAISE EXCEPTION '% can only be re-sealed under the clinic''s active key', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOREACH c IN ARRAY sealed LOOP
      IF (o->c = 'null'::jsonb) <> (n->c = 'null'::jsonb) THEN
        RAISE EXCEPTION 'a sealed value of % can be re-sealed, not added or erased', TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      EXECUTE format('SELECT substring(($1).%I from 2 for 4)', c) USING NEW INTO header;
      IF header IS NOT NULL AND header <> int4send((n->>'key_version')::int) THEN
        RAISE EXCEPTION 'a re-sealed value of % is not under the key its row names', TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege';
      END IF;
    END LOOP;
    RETURN NEW;
  END IF;
  IF cardinality(closing) > 0 AND (o - closing) = (n - closing) THEN
    FOREACH c IN ARRAY closing LOOP
      IF o->c <> 'null'::jsonb AND o->c IS DISTINCT FROM n->c THEN
        RAISE EXCEPTION '% was already closed', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
      END IF;
    END LOOP;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '% is locked: signed or recorded entries cannot be changed', TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _security() -> list[str]:
    statements = [GUARD_FUNCTION]
    for table in TABLES:
        statements += rls.clinic_isolation(table)
    statements += rls.grant("SELECT, INSERT, UPDATE", "encounter", "chart_item", "vitals")
    statements += rls.grant("SELECT, INSERT, UPDATE, DELETE", "prescription")
    statements += rls.grant("SELECT, INSERT, UPDATE", "encounter_revision", "encounter_addendum")
    for table, (sealed, closing, editable) in GUARDED.items():
        statements += [f"CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW "
                       f"EXECUTE FUNCTION guard_row('{sealed}', '{closing}', '{editable}')"]
        statements += rls.no_truncate(table)
    statements += rls.append_only("timeline_event") + rls.no_truncate("timeline_event")
    return statements


def _backfill() -> list[str]:
    """The timeline of what happened before this revision, from the history tables."""
    return [
        "INSERT INTO timeline_event (clinic_id, id, patient_id, at, kind, action, doctor_id, ref_id, by) "
        "SELECT e.clinic_id, e.id, a.patient_id, e.at, 'appointment', e.action, a.doctor_id, e.id, e.by "
        "FROM appointment_event e JOIN appointment a ON a.clinic_id = e.clinic_id AND a.id = e.appointment_id",
        "INSERT INTO timeline_event (clinic_id, id, patient_id, at, kind, action, doctor_id, ref_id, by) "
        "SELECT clinic_id, id, patient_id, changed_at, 'record', action, NULL, id, changed_by FROM patient_history",
        "INSERT INTO timeline_event (clinic_id, id, patient_id, at, kind, action, doctor_id, ref_id, by) "
        "SELECT clinic_id, id, patient_id, at, 'consent', CASE WHEN granted THEN 'given' ELSE 'withdrawn' END, "
        "NULL, id, recorded_by FROM consent_event",
    ]


def downgrade() -> None:
    for table in GUARDED:
        op.execute(f"DROP TRIGGER {table}_guard ON {table}")
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.execute("DROP TRIGGER timeline_event_append_only ON timeline_event")
    op.execute("DROP TRIGGER timeline_event_no_truncate ON timeline_event")
    op.execute("DROP FUNCTION guard_row()")
    op.drop_column('staff_user', 'registration_council')
    op.drop_column('staff_user', 'registration_number')
    op.drop_column('staff_user', 'speciality')
    op.drop_column('staff_user', 'qualifications')
    op.drop_index('ix_prescription_replaces', table_name='prescription', postgresql_where='replaces_id IS NOT NULL')
    op.drop_index('ix_prescription_patient', table_name='prescription')
    op.drop_index('ix_prescription_encounter', table_name='prescription')
    op.drop_table('prescription')
    op.drop_index('ix_encounter_revision_encounter', table_name='encounter_revision')
    op.drop_table('encounter_revision')
    op.drop_index('ix_encounter_addendum_encounter', table_name='encounter_addendum')
    op.drop_table('encounter_addendum')
    op.drop_index('ix_encounter_patient', table_name='encounter')
    op.drop_index('ix_encounter_doctor', table_name='encounter')
    op.drop_index('ix_encounter_appointment', table_name='encounter', postgresql_where='appointment_id IS NOT NULL')
    op.drop_table('encounter')
    op.drop_index('ix_vitals_patient', table_name='vitals')
    op.drop_table('vitals')
    op.drop_index('ix_timeline_event_page', table_name='timeline_event')
    op.drop_index('ix_timeline_event_kind', table_name='timeline_event')
    op.drop_index('ix_timeline_event_doctor', table_name='timeline_event')
    op.drop_table('timeline_event')
    op.drop_index('ix_chart_item_patient', table_name='chart_item')
    op.drop_table('chart_item')
