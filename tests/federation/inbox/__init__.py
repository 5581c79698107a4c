"""Tests of the inbound side: the inbox endpoints, the process_inbox job, the handlers."""
