"""Instance limits, in one place: what the API enforces and what /api/v*/instance advertises."""

from __future__ import annotations

MAX_STATUS_CHARACTERS = 500
CHARACTERS_RESERVED_PER_URL = 23
MAX_MEDIA_ATTACHMENTS = 4
MAX_MEDIA_DESCRIPTION = 1500
MAX_SPOILER_TEXT = 500

# Uploads. The matrix limit is the most pixels an image may decode to (Pillow's bomb guard
# uses the same number); 33,177,600 is 7680×4320.
IMAGE_SIZE_LIMIT = 16 * 1024 * 1024
IMAGE_MATRIX_LIMIT = 33_177_600
SUPPORTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/avif")
# Renditions: the largest public full-size edge, the display ("small") size, the thumbnail.
FULL_MAX_EDGE = 4096
SMALL_MAX_PIXELS = 640 * 360 * 4  # Mastodon's "small" is about 1 megapixel
THUMB_MAX_EDGE = 400

AVATAR_SIZE = (400, 400)
HEADER_SIZE = (1500, 500)
PROFILE_IMAGE_SIZE_LIMIT = 8 * 1024 * 1024

MAX_PROFILE_FIELDS = 4
MAX_DISPLAY_NAME = 30
MAX_NOTE = 500
MAX_FIELD_NAME = 255
MAX_FIELD_VALUE = 255
MAX_FEATURED_TAGS = 10
MAX_PINNED_STATUSES = 5

# Polls (Mastodon's): options, characters per option, and the shortest and longest
# duration in seconds (five minutes; Ruby's month).
MAX_POLL_OPTIONS = 4
MAX_POLL_OPTION_CHARACTERS = 50
MIN_POLL_EXPIRATION = 300
MAX_POLL_EXPIRATION = 2_629_746
