"""Background work claimed from the database, safe with any number of server processes and nodes."""
