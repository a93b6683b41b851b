"""Key rotation finds the sealed columns in the metadata: every `*_enc` column is declared sealed (a column
left undeclared would never be re-encrypted, and its old key could never be retired)."""

from app.db import Base
from app.schema import metadata
from app.security.fields import MASTER, PATIENT, ROWS
from app.security.rotation import sealed_tables


def _columns():
    return [column for table in metadata.sorted_tables for column in table.columns]


def test_every_enc_column_is_declared_sealed_and_only_those():
    undeclared = [f"{c.table.name}.{c.name}" for c in _columns()
                  if c.name.endswith("_enc") and c.info.get("sealed") not in (ROWS, PATIENT, MASTER)]
    assert undeclared == []
    misnamed = [f"{c.table.name}.{c.name}" for c in _columns()
                if "sealed" in c.info and not c.name.endswith("_enc")]
    assert misnamed == []


def test_rotation_discovers_every_table_sealed_row_by_row_with_its_columns():
    found = {table: attrs for _, table, attrs in sealed_tables()}
    declared = {}
    for column in _columns():
        if column.info.get("sealed") == ROWS:
            declared.setdefault(column.table.name, []).append((column.key, column.name.removesuffix("_enc")))
    assert found == declared
    assert {"appointment", "encounter", "prescription", "reminder", "bill_pdf"} <= set(found)
    assert "patient" not in found and "staff_user" not in found  # rotated with their tokens / by the master key
    assert all(model.__table__.name == table and "key_version" in model.__table__.c
               for model, table, _ in sealed_tables())
    assert Base.metadata is metadata
