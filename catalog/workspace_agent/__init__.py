"""The Goldpath workspace agent (agent.py): a standalone, standard-library-only program started inside each
workspace. It is copied into sandboxes and containers as a file and never imports Goldpath or Django."""
