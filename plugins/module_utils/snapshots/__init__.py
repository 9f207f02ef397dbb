# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shard snapshots in S3: format, streaming create, verification, retention and restore.

See docs/snapshots.md for the format; it is readable with ``zstd``, ``tar`` and
``sha256sum`` alone.
"""
