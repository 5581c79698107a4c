"""Easel's web process: settings, database, services, client API, pages and CLI.

Never imports torch or diffusers (see ``protect/``), directly or through an import.
"""

__version__ = "0.1.0"
