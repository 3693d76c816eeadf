"""Alembic migrations shipped inside the package and applied by :mod:`ssmboard.db.engine`.

No alembic.ini is needed: the engine builds an Alembic ``Config`` in code and passes its
open connection through ``config.attributes["connection"]``. To author a new revision
(developers only)::

    python -m ssmboard.db.migrate revision -m "what changes"
"""
