"""Audit shipments: the database's own note of each time signed checkpoints were shipped off it (up to
which position, when), so a shipped-checkpoint file deleted or cut short together with the trail's tail
is a verification problem, not "nothing was shipped". Append-only, one clinic per row (row-level security).
"""

import sqlalchemy as sa
from alembic import op

from app.security import rls

revision = '0007_audit_shipments'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_shipment',
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], name=op.f('fk_audit_shipment_clinic_id_clinic')),
    sa.PrimaryKeyConstraint('clinic_id', 'position', name=op.f('pk_audit_shipment'))
    )
    for statement in [*rls.clinic_isolation("audit_shipment"), *rls.append_only("audit_shipment"),
                      *rls.no_truncate("audit_shipment")]:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('audit_shipment')
