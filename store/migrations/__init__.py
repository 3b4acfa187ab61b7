"""Ordered, named schema migrations, applied by store.db on open and recorded in schema_migrations."""
