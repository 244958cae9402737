"""The ``donjon`` command."""
