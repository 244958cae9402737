"""``python -m donjon``: the same command as ``donjon``."""

from donjon.cli.main import cli

cli(prog_name="donjon")
