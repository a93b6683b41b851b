"""SQL for row-level security and grants, used by migrations.

Every table with `clinic_id` gets ENABLE + FORCE ROW LEVEL SECURITY and the `clinic_isolation`
policy. `NULLIF(..., '')` matters: after a transaction that set it, the setting reads '' rather
than NULL, and no clinic set must mean no rows, not an error.
"""

from app.config import APP_DB_ROLE

CURRENT_CLINIC = "NULLIF(current_setting('app.clinic_id', true), '')::uuid"
CURRENT_USER = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def clinic_isolation(table: str, column: str = "clinic_id", *, shared_when_null: bool = False) -> list[str]:
    """Statements that confine a table's rows to the transaction's clinic.

    `shared_when_null`: rows without a clinic (account-wide events) are visible to every clinic.
    """
    rule = f"{column} = {CURRENT_CLINIC}"
    if shared_when_null:
        rule = f"{column} IS NULL OR {rule}"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY clinic_isolation ON {table} USING ({rule}) WITH CHECK ({rule})",
    ]


def grant_dml(*tables: str) -> list[str]:
    return [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {APP_DB_ROLE}" for t in tables]


def append_only(table: str) -> list[str]:
    """The runtime role may insert and read, never change; a trigger refuses changes from anyone."""
    return [
        f"GRANT SELECT, INSERT ON {table} TO {APP_DB_ROLE}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION refuse_change()",
    ]


def no_truncate(table: str) -> list[str]:
    """Refuse TRUNCATE too (row triggers do not fire on it)."""
    return [f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"]


def grant(privileges: str, *tables: str) -> list[str]:
    return [f"GRANT {privileges} ON {t} TO {APP_DB_ROLE}" for t in tables]


REFUSE_CHANGE_FUNCTION = """
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$
"""
