"""The one place the application reads the current time.

Policy code (listing windows, scheduled retirements, health windows) calls now() instead
of timezone.now() directly, so there is a single seam for tests that move the clock.
"""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
