"""Offline demo agent: stdlib only, edits the current directory deterministically from its prompt."""
