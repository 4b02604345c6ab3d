"""The SQLite backend: connections and the writer discipline (:mod:`.connection`)."""
