"""The Parley server: Converse sessions, VAD turn detection, pipelines and storage."""
