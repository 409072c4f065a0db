"""``python -m trainkit`` runs the command line."""
from .cli import app

app()
