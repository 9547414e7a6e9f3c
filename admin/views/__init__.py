"""The admin site's pages (Flask-Admin views)."""
