"""hie_server: the HTTP composition root (FastAPI app, FHIR REST, operations, auth, audit, CLI).

May import every project package through its public `__init__` API.
"""
