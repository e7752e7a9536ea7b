"""Database access: declarative base, models, engine and session set-up, migrations."""
