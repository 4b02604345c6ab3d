"""Storage backends. Only SQLite exists today; PostgreSQL will be a sibling module with the
same small surface (connect, transactions, error translation), so the layers above never
import ``sqlite3`` themselves."""
