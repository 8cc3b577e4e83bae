"""A GIN index for PostgreSQL's full-text search over the search documents."""

from django.db import migrations

# The same expression as hepstore.search.PG_VECTOR (a migration must not import app code).
PG_VECTOR = (
    "(setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(abstract, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'C'))"
)
CREATE = (
    "CREATE INDEX IF NOT EXISTS hepstore_search_tsv ON hepstore_searchdocument "
    f"USING GIN ({PG_VECTOR})"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS hepstore_search_tsv")


class Migration(migrations.Migration):
    dependencies = [("hepstore", "0004_search_fts")]
    operations = [migrations.RunPython(create, drop)]
