# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monthly restore drill: a scratch namespace of its own (``scratch``), each
shard's newest verified snapshot restored there next to a fresh shard pod
(``shards``), and the per-shard verdict with its recovery time and recovery point
in JUnit XML, Markdown and JSON (``report``).  See docs/restore-drill.md.
"""
