"""Inbound ActivityPub: the inbox endpoints, the ``process_inbox`` job, and one small
handler per activity (Mastodon's ``app/lib/activitypub/activity/*.rb`` shape)."""
