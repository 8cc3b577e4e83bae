from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("hepstore", "0005_search_pg_index"),
    ]

    operations = [
        # Versions that exist already were indexed when they were ingested (and fsck finds
        # any that were not), so they start unmarked; new versions are marked.
        migrations.AddField(
            model_name="analysisversion",
            name="search_pending",
            field=models.BooleanField(db_index=True, default=False),
        ),
        migrations.AlterField(
            model_name="analysisversion",
            name="search_pending",
            field=models.BooleanField(db_index=True, default=True),
        ),
    ]
