"""Backups of service data (no Flask here): what a service mounts, archives of it, restores.

- mounts.py: a service's named volumes and bind folders from the Compose model.
- store.py: the backups folder, manifests, names that cannot leave it.
- streams.py: tar streams of volumes and folders, gzip files with their sha256, file lists.
- jobs.py: back up (stop / dump / live / skip) and restore, step by step with a safety backup.
"""
