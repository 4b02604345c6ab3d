"""The dashboard's views, one module each (server/dashboard.py lists them)."""
