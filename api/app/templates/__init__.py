"""HTML templates (``string.Template``; every substituted value is escaped)."""
