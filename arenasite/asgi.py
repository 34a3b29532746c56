"""The site as an ASGI application: what uvicorn serves in `make run` (bin/run) and under
gunicorn in production, so the answer streams (battles/stream_api.py) hold no thread per viewer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arenasite.settings")
application = get_asgi_application()
