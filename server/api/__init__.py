"""The Mastodon client API: one module per resource, thin endpoints.

Each endpoint: authenticate (``auth.py``), parse (``params.py``), call one service,
serialise (``entities.py``). Errors are ``ApiError``/``ServiceError``, answered as
``{"error": "..."}`` by ``server/errors.py``.
"""
