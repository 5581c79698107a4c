"""Use cases: each public function is one thing a person or the system does.

Services take a session and plain values, commit their own change, and enqueue follow-up
work as job rows. They never import ``federation`` or anything that loads torch.
"""
