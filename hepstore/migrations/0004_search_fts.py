"""The SQLite FTS5 table behind the embedded search (other databases do not get it)."""

from django.db import migrations

CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS hepstore_search_fts USING fts5("
    "title, abstract, body, tokenize = 'porter unicode61')"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS hepstore_search_fts")


class Migration(migrations.Migration):
    dependencies = [("hepstore", "0003_search_document")]
    operations = [migrations.RunPython(create, drop)]
