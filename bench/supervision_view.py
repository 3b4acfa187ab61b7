"""`python -m bench.supervision_view`: the cost of the §3 supervision view against the consultants' queue.

The chat server recomputes the view (`store.supervision.live_chats`) at most twice a second while a
supervisor is connected (webchat/supervision.py MIN_PUSH_SECONDS), and never when nobody supervises.
This measures one view over many open chats as a ratio to `store.chats.queue()`, measured in the same
run on the same store (the queue is computed on every queue change already). Not part of `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path


async def measure(open_chats: int, active: int, lines: int, repeats: int) -> dict[str, float]:
    from store import Store
    from store.models import Actor
    from store.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(Path(tmp) / "data", env={}, password_profile="fast", opening_hours="always")
        store = await Store.open(settings, create=True)
        try:
            system = Actor.system("bench")
            staff = [
                await store.accounts.add_staff(
                    system, f"konsultant{i:02d}", ("consultant",), "bench-password-not-secret"
                )
                for i in range(50)
            ]
            notice = await store.notices.current("chat", "pl")
            ids = [(await store.chats.open(notice.id, "pl")).chat.id for _ in range(open_chats)]
            for i, chat_id in enumerate(ids[:active]):
                actor = staff[i % len(staff)].as_actor()
                await store.chats.accept(actor, chat_id)
                for j in range(lines // 2):
                    await store.chats.post_resident(chat_id, f"pytanie {j}")
                    await store.chats.post_consultant(actor, chat_id, f"odpowiedź {j}")

            async def median_ms(fn) -> float:
                times = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    await fn()
                    times.append(time.perf_counter() - began)
                return statistics.median(times) * 1000

            queue = await median_ms(store.chats.queue)
            view = await median_ms(store.supervision.live_chats)
        finally:
            await store.close()
    return {"queue_ms": queue, "view_ms": view, "ratio": view / queue}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-chats", type=int, default=2000)
    parser.add_argument("--active", type=int, default=150)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    out = asyncio.run(measure(args.open_chats, args.active, args.lines, args.repeats))
    print(
        f"{args.open_chats} open chats ({args.active} answered, {args.lines} lines each): "
        f"supervision view {out['view_ms']:.1f} ms, queue {out['queue_ms']:.1f} ms, ratio {out['ratio']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
