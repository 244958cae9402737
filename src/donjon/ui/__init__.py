"""The web console at ``/ui``: static pages and modules (``static/``), served with a strict CSP.

The console is a client of the API on the same origin and nothing more: every action is an API request
carrying the credential the person signed in with, held in the page's memory only (never in a cookie,
``localStorage`` or a URL), so the API's policy decides everything. ``routes`` serves the files and the two
helpers the API has no equivalent for: who the credential names, and Keystone's password sign-in.
"""

from donjon.ui.routes import UNAUDITED, ui_routes

__all__ = ["UNAUDITED", "ui_routes"]
