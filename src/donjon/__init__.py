"""donjon: a secrets service that speaks OpenStack Barbican's v1 API."""

__version__ = "0.1.0"
