"""bench/api.py's settings: the product's, with a urlconf that adds the bare view to compare
against (the bare view is never among the product's routes)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "api_urls"
