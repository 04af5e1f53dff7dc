"""Database access: table definitions, engine creation, dimension loading."""
