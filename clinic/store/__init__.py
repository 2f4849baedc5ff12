"""Where the domain keeps its records: SQLAlchemy models, engines, migrations, backups."""
