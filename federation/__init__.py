"""ActivityPub: signatures, keys, the safe HTTP client, AS2 (de)serialisation, inbox, delivery.

May use ``server.models`` and ``server.services``; services never import this package.
"""
