"""foundation

Revision ID: 0001
Revises: 
Create Date: 2026-11-21

Clinics, staff, memberships, sign-in events, server-side sessions; row-level security on the
clinic-owned tables, grants for the runtime role, and append-only sign-in events.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.security import rls

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_app_meta'))
    )
    op.create_table('clinic',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('address_line', sa.String(length=300), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('pin_code', sa.String(length=6), nullable=False),
    sa.Column('state_code', sa.String(length=2), nullable=False),
    sa.Column('gstin', sa.String(length=15), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic'))
    )
    op.create_table('staff_user',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('full_name', sa.String(length=120), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('totp_secret_enc', sa.LargeBinary(), nullable=True),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
    sa.Column('mfa_enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_user')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_user_email'))
    )
    op.create_table('auth_event',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Enum('password_ok', 'password_failed', 'locked_out', 'mfa_ok', 'mfa_failed', 'mfa_replay', 'mfa_enrolled', 'recovery_code_used', 'mfa_reset', 'signed_out', 'session_expired', 'password_changed', 'user_created', 'user_disabled', 'user_enabled', 'role_changed', 'reauth_failed', 'clinic_switched', 'access_denied', name='autheventkind', native_enum=False, length=32), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('clinic_id', sa.Uuid(), nullable=True),
    sa.Column('email_hmac', sa.String(length=64), nullable=True),
    sa.Column('ip', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['actor_user_id'], ['staff_user.id'], name=op.f('fk_auth_event_actor_user_id_staff_user')),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_auth_event_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_auth_event_user_id_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_event'))
    )
    op.create_index('ix_auth_event_email_hmac_at', 'auth_event', ['email_hmac', 'at'], unique=False)
    op.create_index('ix_auth_event_clinic_id_at', 'auth_event', ['clinic_id', 'at'], unique=False)
    op.create_index('ix_auth_event_ip_at', 'auth_event', ['ip', 'at'], unique=False)
    op.create_index('ix_auth_event_user_id_at', 'auth_event', ['user_id', 'at'], unique=False)
    op.create_table('membership',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.Enum('admin', 'doctor', 'nurse', 'reception', 'billing', 'auditor', name='role', native_enum=False, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_membership_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_membership_user_id_staff_user')),
    sa.PrimaryKeyConstraint('clinic_id', 'user_id', name=op.f('pk_membership'))
    )
    op.create_index(op.f('ix_membership_user_id'), 'membership', ['user_id'], unique=False)
    op.create_table('recovery_code',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=200), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_recovery_code_user_id_staff_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code'))
    )
    op.create_index(op.f('ix_recovery_code_user_id'), 'recovery_code', ['user_id'], unique=False)
    op.create_table('user_session',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('active_clinic_id', sa.Uuid(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authenticated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['active_clinic_id'], ['clinic.id'], name=op.f('fk_user_session_active_clinic_id_clinic')),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_user_session_user_id_staff_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session'))
    )
    op.create_index(op.f('ix_user_session_last_activity_at'), 'user_session', ['last_activity_at'], unique=False)
    op.create_index(op.f('ix_user_session_user_id'), 'user_session', ['user_id'], unique=False)

    statements = [rls.REFUSE_CHANGE_FUNCTION]
    statements += rls.grant_dml("clinic", "staff_user", "membership", "recovery_code", "user_session")
    statements += ["GRANT SELECT, INSERT ON app_meta TO clinicdesk_app"]
    statements += rls.append_only("auth_event")
    statements += rls.clinic_isolation("auth_event", shared_when_null=True)
    statements += rls.clinic_isolation("membership")
    # A user sees their own memberships in every clinic (to sign in and switch clinic).
    statements.append(f"CREATE POLICY own_memberships ON membership FOR SELECT USING (user_id = {rls.CURRENT_USER})")
    statements += rls.clinic_isolation("clinic", column="id")
    statements.append(
        "CREATE POLICY member_clinics ON clinic FOR SELECT USING (EXISTS (SELECT 1 FROM membership m "
        f"WHERE m.clinic_id = clinic.id AND m.user_id = {rls.CURRENT_USER}))"
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f('ix_user_session_user_id'), table_name='user_session')
    op.drop_index(op.f('ix_user_session_last_activity_at'), table_name='user_session')
    op.drop_table('user_session')
    op.drop_index(op.f('ix_recovery_code_user_id'), table_name='recovery_code')
    op.drop_table('recovery_code')
    op.drop_index(op.f('ix_membership_user_id'), table_name='membership')
    op.drop_table('membership')
    op.drop_index('ix_auth_event_user_id_at', table_name='auth_event')
    op.drop_index('ix_auth_event_ip_at', table_name='auth_event')
    op.drop_index('ix_auth_event_email_hmac_at', table_name='auth_event')
    op.drop_index('ix_auth_event_clinic_id_at', table_name='auth_event')
    op.drop_table('auth_event')
    op.drop_table('staff_user')
    op.drop_table('clinic')
    op.drop_table('app_meta')
    op.execute("DROP FUNCTION refuse_change()")
