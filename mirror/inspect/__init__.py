"""Read-only verbs on a destination: ``status`` (what it holds), ``verify`` (re-hash every file
against the manifest; the repair itself is a sync, in ``engine``) and ``local`` (how much of a
selection is already here, for ``plan``). Nothing here spends a credit or writes to DEST."""
