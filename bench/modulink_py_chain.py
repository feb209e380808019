"""The 10-link insert chain of chain-core's `context_10_inserts` benchmark,
on modulink-py 4.0.3, with `async def` links (`async`, the default) or plain
`def` links (`sync`). Prints nanoseconds per chain run (median of rounds).

Usage: python modulink_py_chain.py [async|sync] [runs per round]"""

import asyncio
import statistics
import sys
import time

from modulink import Chain, Context


def make_link(index, asynchronous):
    key = f"k{index}"

    async def async_link(ctx):
        ctx[key] = index
        return ctx

    def sync_link(ctx):
        ctx[key] = index
        return ctx

    link = async_link if asynchronous else sync_link
    link.__name__ = f"s{index}"
    return link


async def measure(runs_per_round, rounds, asynchronous):
    chain = Chain(*[make_link(i, asynchronous) for i in range(10)])
    for _ in range(runs_per_round):  # warm-up
        await chain.run(Context())
    per_run = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(runs_per_round):
            out = await chain.run(Context())
        per_run.append((time.perf_counter_ns() - start) / runs_per_round)
    assert [out[f"k{i}"] for i in range(10)] == list(range(10))
    return statistics.median(per_run)


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "async"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    print(f"{asyncio.run(measure(runs, 7, kind == 'async')):.0f}")
