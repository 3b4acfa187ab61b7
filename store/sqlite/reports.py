"""The supervision report's repository on SQLite: the audit log's counts, requests, purge runs and live watching.

store/reports.py holds the rules (who may, the period, which actions are accesses, how requests are
judged on time, what is audited); this module holds the SQL. The report's audit entry is written in
its unit of work.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..supervision import SupervisionActivity
from .database import Repository
from .supervision import supervision_activity


class ReportsRepository(Repository):
    """The SQL of store/reports.py's Reports service."""

    async def access_counts(self, since: str, until: str, prefixes: Sequence[str]) -> list[Any]:
        """`ok` entries in [since, until) whose action starts with one of `prefixes`, per person, action and purpose."""
        patterns = [p.replace("_", "\\_") + "%" for p in prefixes]
        like = " OR ".join("action LIKE ? ESCAPE '\\'" for _ in prefixes)
        return await self.db.fetchall(
            f"SELECT actor_name, action, coalesce(purpose, '') AS purpose, count(*) AS n FROM audit"
            f" WHERE at >= ? AND at < ? AND outcome = 'ok' AND ({like})"
            " GROUP BY actor_name, action, coalesce(purpose, '') ORDER BY actor_name, action, purpose",
            (since, until, *patterns),
        )

    async def refusal_counts(self, since: str, until: str) -> list[Any]:
        return await self.db.fetchall(
            "SELECT actor_name, action, count(*) AS n FROM audit WHERE at >= ? AND at < ? AND outcome = 'refused'"
            " GROUP BY actor_name, action ORDER BY actor_name, action",
            (since, until),
        )

    async def purge_runs(self, since: str, until: str) -> list[Any]:
        """Real (not dry) purge runs started in [since, until), in id order."""
        return await self.db.fetchall(
            "SELECT * FROM purge_runs WHERE dry_run = 0 AND started_at >= ? AND started_at < ? ORDER BY id",
            (since, until),
        )

    async def requests_received(self, first_day: str, last_day: str) -> list[Any]:
        return await self.db.fetchall(
            "SELECT kind, decision, decided_at, withdrawn_at, received_on, due_on, extended_until"
            " FROM access_requests WHERE received_on >= ? AND received_on <= ?",
            (first_day, last_day),
        )

    async def supervision_activity(self, since: str, until: str) -> SupervisionActivity:
        """Live chats watched and stepped into in [since, until) (store/sqlite/supervision.py)."""
        return await supervision_activity(self.db, since, until)
