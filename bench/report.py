#!/usr/bin/env python3
"""Writes the tables of BENCHMARKS.md (and the model in SCALING.md) and the
curves in bench/plots/ from
measured output only: criterion's estimates (target/criterion, or
$CRITERION_HOME) and the JSON the comparison scripts leave in
target/bench-report/. `bench/report.sh` runs the measurements and then this.

Each table sits between `<!-- report:NAME -->` and `<!-- /report:NAME -->`
in BENCHMARKS.md and is replaced whole; the prose around it is not touched.
A table whose measurements are missing is left as it was and named on
stderr, so a partial run (`bench/report.sh --only ...`) updates what it
measured. Exit status 1 if any table is missing.

Usage: bench/report.py [--only TABLE...]
"""

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = pathlib.Path(os.environ.get("CRITERION_HOME", ROOT / "target" / "criterion"))
OUTPUT = ROOT / "target" / "bench-report"
PLOTS = ROOT / "bench" / "plots"
DOC = ROOT / "BENCHMARKS.md"


class Missing(Exception):
    """A measurement the table needs is not on disk."""


def ns(bench):
    """Criterion's median estimate for `bench` (group/function/parameter), ns
    per iteration."""
    path = CRITERION / bench / "new" / "estimates.json"
    if not path.exists():
        raise Missing(bench)
    return json.loads(path.read_text())["median"]["point_estimate"]


def elements(bench):
    """The elements per iteration criterion was told (Throughput::Elements)."""
    path = CRITERION / bench / "new" / "benchmark.json"
    if not path.exists():
        raise Missing(bench)
    throughput = json.loads(path.read_text()).get("throughput") or {}
    if "Elements" not in throughput:
        raise Missing(f"{bench} (no throughput)")
    return throughput["Elements"]


def per_second(bench):
    return elements(bench) / (ns(bench) * 1e-9)


def script(name):
    path = OUTPUT / f"{name}.json"
    if not path.exists():
        raise Missing(str(path.relative_to(ROOT)))
    return json.loads(path.read_text())


def t(value):
    """A time in ns, to the precision the machine's noise allows."""
    if value >= 10_000:
        return f"{value / 1000:,.1f} µs"
    if value >= 1000:
        return f"{value:,.0f} ns"
    return f"{value:.1f} ns"


def rate(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k"
    return f"{value:.0f}"


def met(ok):
    return "yes" if ok else "**no**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- chain-core


def chain_core():
    g = "context_10_inserts/"
    typed_hand, typed_chain = ns("typed_10_links/hand_written"), ns("typed_10_links/chain")
    hand, chain = ns(g + "hand_written"), ns(g + "chain")
    rows = []

    def row(name, baseline_name, baseline, ours, per_link, target="", verdict=""):
        rows.append([name, f"{baseline_name}: {t(baseline)}", t(ours), per_link, target, verdict])

    per = (typed_chain - typed_hand) / 10
    row("(a) trivial async links, typed context", "hand-awaited", typed_hand, typed_chain,
        t(per), "≤ 20 ns", met(per <= 20))
    per = (chain - hand) / 10
    row("(b) each link inserts a key into `Context`", "hand-awaited", hand, chain, t(per),
        "≤ 20 ns", met(per <= 20))
    for name, bench in [
        ("(b') same, links added with `link_sync`", "chain_sync_links"),
        ("(b'') same `async fn` links in one `fused` run", "chain_fused_links"),
        ("(b''') floor of any type-erased chain: the steps boxed and looped by hand",
         "erased_by_hand"),
    ]:
        ours = ns(g + bench)
        row(name, "hand-awaited", hand, ours, t((ours - hand) / 10))
    builder, boxed = ns(g + "tower_service_builder"), ns(g + "tower_box_service")
    rows.append(["(c) the same 10 steps as a tower `ServiceBuilder` stack (static types)",
                 f"tower: {t(builder)} ({t((builder - hand) / 10)} per layer)", t(chain),
                 f"{t((chain - builder) / 10)} per link against tower", "≤ tower",
                 met(chain <= builder)])
    rows.append(["(c') the same as tower `BoxService`s",
                 f"tower: {t(boxed)} ({t((boxed - hand) / 10)} per layer)", t(chain),
                 f"{t((chain - boxed) / 10)} per link against tower", "≤ tower",
                 met(chain <= boxed)])
    m = "timing_10_links/"
    hand_plain, hand_timed = ns(m + "hand_written_plain"), ns(m + "hand_written_timed")
    chain_plain = ns(m + "chain_plain")
    timing_work = hand_timed - hand_plain
    for name, bench in [
        ("(d) `timing` as an observer (`Chain::observe`)", "chain_timing_observer"),
        ("(d') `timing` as around-middleware (`Chain::around_each`)", "chain_timing_middleware"),
    ]:
        ours = ns(m + bench)
        per = ((ours - chain_plain) - timing_work) / 10
        row(name, "hand-written timing", hand_timed, ours, f"{t(per)} per link per "
            + ("observer" if "observer" in bench else "middleware"), "≤ 15 ns", met(per <= 15))
    ours = ns(m + "chain_passthrough_middleware")
    per = (ours - chain_plain) / 10
    row("(d'') a pass-through `from_fn` middleware", "chain without middleware", chain_plain,
        ours, f"{t(per)} per link per middleware", "≤ 15 ns", met(per <= 15))
    erased_plain = ns(m + "erased_plain_by_hand")
    erased_around = ns(m + "erased_passthrough_by_hand")
    floor = (erased_around - erased_plain) / 10
    row("(d''') floor of any type-erased middleware: links and a pass-through middleware "
        "boxed and looped by hand", "erased links, no middleware", erased_plain, erased_around,
        f"{t(floor)} per link per middleware")
    body = table(["benchmark (10 links)", "baseline", "chain-core", "overhead per link",
                  "target", "met"], rows)
    return body + (f"\n\nHand plain: {t(hand_plain)}, hand timed: {t(hand_timed)}, "
                   f"chain plain: {t(chain_plain)}.")


def modulink_py():
    py = script("modulink_py")
    g = "context_10_inserts/"
    rows = []
    for name, python, bench in [
        ("`async def` / `async fn`", py["async_ns"], "chain"),
        ("`async def` / `async fn` in one `fused` run", py["async_ns"], "chain_fused_links"),
        ("`def` / `link_sync`", py["sync_ns"], "chain_sync_links"),
    ]:
        ours = ns(g + bench)
        ratio = python / ours
        rows.append([name, f"{python:,.0f} ns per run ({python / 10:,.0f} ns per link)", t(ours),
                     f"{ratio:.0f}x", "≥ 50x", met(ratio >= 50)])
    return table([f"links", f"modulink-py {py['version']}", "chain-core", "ratio", "target",
                  "met"], rows)


# --------------------------------------------------------------- resilience


def circuit_breaker():
    names = [
        ("unguarded", "unguarded"),
        ("chain-resilience, `try_acquire` + `Permit::success`", "chain_resilience_permit"),
        ("chain-resilience, `call(async { .. })`", "chain_resilience_call"),
        ("failsafe-rs, default policy", "failsafe_default_policy"),
        ("failsafe-rs, consecutive failures only", "failsafe_consecutive_failures"),
    ]
    rows = [[name, t(ns(f"guarded_no_op_1_thread/{b}")), t(ns(f"guarded_no_op_2_thread/{b}"))]
            for name, b in names]
    rows.append(["rejection by an open breaker (`try_acquire` error)",
                 t(ns("rejected_call/chain_resilience")), ""])
    one = lambda b: ns(f"guarded_no_op_1_thread/{b}")
    two = lambda b: ns(f"guarded_no_op_2_thread/{b}")
    permit, call = one("chain_resilience_permit"), one("chain_resilience_call")
    targets = table(["target", "measured", "met"], [
        ["guarded call ≤ 40 ns, one thread", f"{t(permit)} and {t(call)}",
         met(max(permit, call) <= 40)],
        ["no slower than failsafe-rs's default policy (a rate window, like ours)",
         f"{one('failsafe_default_policy') / permit:.1f}x faster on one thread, "
         f"{two('failsafe_default_policy') / two('chain_resilience_permit'):.1f}x on two",
         met(permit <= one("failsafe_default_policy")
             and two("chain_resilience_permit") <= two("failsafe_default_policy"))],
        ["no slower than failsafe-rs's consecutive-failures policy (one counter, no window)",
         f"{permit / one('failsafe_consecutive_failures'):.2f}x its time on one thread, "
         f"{two('chain_resilience_permit') / two('failsafe_consecutive_failures'):.2f}x on two",
         met(permit <= one("failsafe_consecutive_failures")
             and two("chain_resilience_permit") <= two("failsafe_consecutive_failures"))],
        ["no collapse on two threads (≤ 1.5x one thread)",
         f"{two('chain_resilience_permit') / permit:.2f}x",
         met(two("chain_resilience_permit") <= 1.5 * permit)],
    ])
    return table(["call", "1 thread", "2 threads"], rows) + "\n\n" + targets


def rate_limit():
    g = "rate_limiter_check/"
    rows = []
    for name, ours, theirs, label in [
        ("rate limiter check, global", "chain_resilience", "governor", "governor"),
        ("rate limiter check, one key", "chain_resilience_keyed", "governor_keyed",
         "governor keyed"),
    ]:
        a, b = ns(g + ours), ns(g + theirs)
        rows.append([name, f"{label}: {t(b)}", t(a), f"{a / b:.2f}x", "≤ 1.5x governor",
                     met(a <= 1.5 * b)])
    rows.append(["full pipeline around a ready call",
                 f"bare call: {t(ns('pipeline_ready_call/bare'))}",
                 t(ns("pipeline_ready_call/full_pipeline")), "", "", ""])
    return table(["benchmark", "baseline", "chain-resilience", "ratio", "target", "met"], rows)


# ------------------------------------------------------------ observability


def metrics():
    plain, inst = ns("metrics_10_links/uninstrumented"), ns("metrics_10_links/instrumented")
    per = (inst - plain) / 10
    return table(["chain (10 links)", "time", "per link", "target", "met"], [
        ["uninstrumented", t(plain), "", "", ""],
        ["instrumented", t(inst), f"{t(per)} more", "≤ 100 ns", met(per <= 100)],
    ])


def tracing():
    rows = []
    for group, subscriber in [("tracing_10_links", "none"),
                              ("tracing_10_links_fmt_subscriber", "`fmt` to a sink")]:
        plain = ns(f"{group}/untraced")
        rows.append([subscriber, "untraced", t(plain), "", "", ""])
        for name, bench in [("`Tracer`, sampling off", "sampling_off"),
                            ("`Tracer`, sampling on", "sampling_on"),
                            ("`Tracer`, sampling on, spans kept in a `SpanStore`",
                             "sampling_on_with_store")]:
            try:
                ours = ns(f"{group}/{bench}")
            except Missing:
                if bench == "sampling_on_with_store":
                    continue
                raise
            per = (ours - plain) / 10
            off = bench == "sampling_off"
            rows.append([subscriber, name, t(ours), f"{t(per)} more", "≤ 50 ns" if off else "",
                         met(per <= 50) if off else ""])
    return table(["subscriber", "chain (10 links)", "time", "per link", "target", "met"], rows)


# ----------------------------------------------------------------- security


def validation():
    base, full = ns("registration/deserialize_only"), ns("registration/validate_and_sanitize")
    return table(["step", "time", "target", "met"], [
        ["deserialize only (baseline)", t(base), "", ""],
        ["validate and sanitize", t(full), "≤ 10 µs", met(full <= 10_000)],
    ])


def jwt():
    base, ours = ns("hs256_verify/jsonwebtoken_decode"), ns("hs256_verify/jwt_keys_verify")
    return table(["HS256 verification", "time", "per second per core", "target", "met"], [
        ["`jsonwebtoken::decode` alone (baseline)", t(base), f"{1e9 / base:,.0f}", "", ""],
        ["`JwtKeys::verify` (explicit `alg: none` check, key by `kid`, pinned algorithm, "
         "claims)", t(ours), f"{1e9 / ours:,.0f}", "≥ 300,000", met(1e9 / ours >= 300_000)],
    ])


# ------------------------------------------------------------------ scaling

STRATEGIES = [
    ("round robin", "round_robin", 50),
    ("smooth weighted round robin", "weighted_round_robin", None),
    ("least connections, an idle node", "least_connections", 50),
    ("least connections, every node busy", "least_connections_busy", 50),
    ("power of two choices (EWMA)", "power_of_two_choices", 50),
    ("random", "random", None),
    ("consistent hash (xxh3 ring)", "consistent_hash", 150),
]


def balance_pick():
    sizes = [3, 100, 1000, 10000]
    rows = []
    for name, bench, target in STRATEGIES:
        cells = [t(ns(f"pick/{bench}/{n}")) for n in sizes]
        at_100 = ns(f"pick/{bench}/100")
        rows.append([name, *cells, f"≤ {target} ns" if target else "",
                     met(at_100 <= target) if target else ""])
    return table(["strategy", *[f"{n:,} nodes" for n in sizes], "target at 100", "met"], rows)


def balance_two_threads():
    sizes = [3, 100, 1000]
    rows = [[name, *[t(ns(f"pick_2_threads/{bench}/{n}")) for n in sizes]]
            for name, bench, _ in STRATEGIES
            if (CRITERION / "pick_2_threads" / bench).exists()]
    if not rows:
        raise Missing("pick_2_threads")
    return table(["strategy", *[f"{n:,} nodes" for n in sizes]], rows)


def balance_route():
    return table(["nodes", "ours", "tower p2c"], [
        [n, t(ns(f"p2c_route_request/ours/{n}")), t(ns(f"p2c_route_request/tower/{n}"))]
        for n in [3, 100]
    ])


def events():
    rows = []
    verdicts = []
    for allocator, group in [("system (glibc)", "events_publish_to_handled"),
                             ("mimalloc", "events_publish_to_handled_mimalloc")]:
        bus = per_second(f"{group}/event_bus/2")
        raw = per_second(f"{group}/raw_mpsc_fan_out/2")
        rows.append([allocator, f"{rate(bus)}", f"{rate(raw)}", f"{100 * bus / raw:.0f}%"])
        verdicts.append((allocator, bus, raw))
    (_, bus, raw), _ = verdicts
    targets = table(["target", "measured", "met"], [
        ["`EventBus` ≥ 1,000,000 events/s with the system allocator", f"{rate(bus)} events/s",
         met(bus >= 1e6)],
        ["`EventBus` ≥ 50% of the raw fan-out", f"{100 * bus / raw:.0f}%", met(bus >= 0.5 * raw)],
    ])
    return (table(["allocator", "`EventBus` (events/s)", "raw mpsc fan-out (events/s)", "ratio"],
                  rows) + "\n\n" + targets)


def nats_rounds(group):
    """The rounds of `group` measured by the latest run, as the prefixes of
    their benchmarks (`group/round1_`, `group/round2_`, ...), in order, each
    no older than round 1 (a round left over from an earlier run with more
    rounds is older)."""
    rounds = []
    while True:
        prefix = f"{group}/round{len(rounds) + 1}_"
        runs = list(CRITERION.glob(f"{prefix}*/new/estimates.json"))
        if not runs:
            break
        newest = max(p.stat().st_mtime for p in runs)
        if rounds and newest < rounds[0][1]:
            break
        rounds.append((prefix, newest))
    if not rounds:
        raise Missing(f"{group}/round1_*")
    return [prefix for prefix, _ in rounds]


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def events_nats():
    measured = []
    for g in nats_rounds("nats_publish_to_handled"):
        measured.append({
            "bus_one": per_second(g + "event_bus_jetstream_one_by_one"),
            "raw_one": per_second(g + "raw_async_nats_one_by_one"),
            "bus_many": per_second(g + "event_bus_jetstream_pipelined"),
            "raw_many": per_second(g + "raw_async_nats_pipelined"),
        })

    def figure(key):
        values = [m[key] for m in measured]
        return f"{rate(median(values))} ({rate(min(values))} – {rate(max(values))})"

    def ratio(over, under, percent=False):
        values = [m[over] / m[under] for m in measured]
        shown = (lambda v: f"{100 * v:.0f}%") if percent else (lambda v: f"{v:.2f}x")
        return median(values), f"{shown(median(values))} ({shown(min(values))} – {shown(max(values))})"

    rows = table(["publishing", "`EventBus` on `JetStream` (events/s)",
                  "hand-written async-nats (events/s)", "ratio"], [
        ["each acknowledgement awaited before the next publish (`publish`)", figure("bus_one"),
         figure("raw_one"), ratio("bus_one", "raw_one", True)[1]],
        ["up to 256 acknowledgements outstanding (`publish_all`)", figure("bus_many"),
         figure("raw_many"), ratio("bus_many", "raw_many", True)[1]],
    ])
    over_naive, over_naive_shown = ratio("bus_many", "raw_one")
    floor, floor_shown = ratio("raw_many", "raw_one")
    of_pipelined, of_pipelined_shown = ratio("bus_many", "raw_many", True)
    one_by_one, one_by_one_shown = ratio("bus_one", "raw_one", True)
    targets = table([f"target (median of {len(measured)} rounds; min – max)", "measured", "met"], [
        ["`publish_all` ≥ 2x the naive hand-written baseline", over_naive_shown,
         met(over_naive >= 2)],
        ["(the pipelined hand-written baseline against the naive one: what pipelining "
         "itself gives on this machine)", floor_shown, "—"],
        ["`publish_all` ≥ 80% of the equally pipelined hand-written baseline",
         of_pipelined_shown, met(of_pipelined >= 0.8)],
        ["`publish` ≥ 70% of the naive hand-written baseline", one_by_one_shown,
         met(one_by_one >= 0.7)],
    ])
    return (f"Median over {len(measured)} rounds, each measuring the four one after the "
            "other (min – max over the rounds in brackets):\n\n" + rows + "\n\n" + targets)


def durable():
    g = "durable_checkpoint/"
    rows = []
    for setting, meaning in (("normal", "`Durability::Normal` (fsync at WAL checkpoints)"),
                             ("full", "`Durability::Full` (fsync every commit)")):
        raw, ours = ns(g + "raw_sqlite_update/" + setting), ns(g + "checkpoint/" + setting)
        rows.append([meaning, t(raw), t(ours), f"{ours / raw:.1f}x"])
    checkpoint = table(["SQLite setting", "raw rusqlite UPDATE", "`checkpoint` (store)",
                        "ratio"], rows)
    e = "durable_executions/"
    executions = table(["store", "executions/s (four links, one worker)", "per execution"], [
        [name, rate(per_second(e + bench)), t(ns(e + bench))]
        for name, bench in (("SQLite, `Durability::Normal`", "sqlite/normal"),
                            ("SQLite, `Durability::Full`", "sqlite/full"),
                            ("JetStream key-value (R1, file storage, loopback)", "jetstream/r1"),
                            ("in memory (tests only)", "memory/none"))])
    sizes = [100, 1_000, 10_000, 100_000]
    size_rows = [[f"{size:,} B", t(ns(f"durable_checkpoint_context_size/{size}"))]
                 for size in sizes]
    growth = table(["context", "checkpoint (`Normal`)"], size_rows)
    return checkpoint + "\n\n" + executions + "\n\n" + growth


def streaming():
    s = script("streaming")
    rows = []
    if s.get("max_rss_kb") is not None:
        rss = s["max_rss_kb"] / 1024
        rows.append(["peak RSS (`/usr/bin/time -v`, maximum resident set size)",
                     f"{rss:.1f} MB", "≤ 64 MB", met(rss <= 64)])
    if s.get("kernel_peak_mb") is not None:
        rows.append(["peak RSS (the kernel's `VmHWM`, printed by the example)",
                     f"{s['kernel_peak_mb']:.1f} MB", "", ""])
    rows.append(["throughput", f"{s['items_per_second'] / 1e6:.2f} M items/s "
                 f"({s['seconds']:.2f} s)", "", ""])
    rows.append(["concurrency lowered by the monitor", f"{s['throttled']} times", "", ""])
    return table(["", "measured", "target", "met"], rows)


def router():
    r = script("router")
    rounds = r["rounds"]
    rows = []
    for target in r["targets"]:
        rps = sorted(x["rps"] for x in target["rounds"])
        median = rps[len(rps) // 2]
        row = min(target["rounds"], key=lambda x: abs(x["rps"] - median))
        rows.append([target["name"], f"{median:,.0f}", f"{rps[0]:,.0f} – {rps[-1]:,.0f}",
                     row["p50"], row["p99"]])
    by_name = {target["key"]: target for target in r["targets"]}

    def med(key):
        rps = sorted(x["rps"] for x in by_name[key]["rounds"])
        return rps[len(rps) // 2]

    ratio = med("router_threads") / med("nginx")
    ahead = sum(a["rps"] >= b["rps"] for a, b in
                zip(by_name["router_threads"]["rounds"], by_name["nginx"]["rounds"]))
    cpu = []
    for target in r["targets"]:
        user = sorted(x["user_us_per_request"] for x in target["rounds"])
        kernel = sorted(x["kernel_us_per_request"] for x in target["rounds"])
        cpu.append([target["name"], f"{user[len(user) // 2]:.1f} µs ({user[0]:.1f} – {user[-1]:.1f})",
                    f"{kernel[len(kernel) // 2]:.1f} µs ({kernel[0]:.1f} – {kernel[-1]:.1f})"])
    target_rows = [
        ["requests/s ≥ nginx's (2 event loops against nginx's 2 workers)",
         f"{100 * ratio:.1f}% of nginx by median; ahead in {ahead} of {rounds} rounds",
         met(ratio >= 1.0)],
    ]
    open_loop = r.get("open_loop") or []
    if not open_loop:
        raise Missing("the router's open-loop latencies (oha)")
    at = {(x["load_percent"], x["key"]): x for x in open_loop}
    if (80, "router_threads") in at and (80, "nginx") in at:
        ours, theirs = at[(80, "router_threads")]["p99_ms"], at[(80, "nginx")]["p99_ms"]
        target_rows.append([
            "p99 at 80% of nginx's maximum rate ≤ nginx's p99 (open loop, median over the rounds)",
            f"{ours['median']:.2f} ms against {theirs['median']:.2f} ms",
            met(ours["median"] <= theirs["median"])])

    def spread(figure):
        return f"{figure['median']:.2f} ms ({figure['min']:.2f} – {figure['max']:.2f})"
    oha_max = r["nginx_oha_max_rps"]
    latency = (f"nginx's maximum under oha (closed loop, {len(oha_max)} rounds): "
               f"{oha_max[len(oha_max) // 2]:,.0f} requests/s (median; "
               f"{oha_max[0]:,.0f} – {oha_max[-1]:,.0f}). Open loop at fractions of it, "
               f"{open_loop[0]['rounds']} rounds, median (min – max) over the rounds:\n\n"
               + table(["load (of nginx's maximum)", "target", "sent requests/s", "p50", "p99",
                        "p99.9", "success"], [
                   [f"{x['load_percent']}%", x["name"], f"{x['requests_per_second']:,.0f}",
                    spread(x["p50_ms"]), spread(x["p99_ms"]), spread(x["p99_9_ms"]),
                    f"{100 * x['success_rate']:.1f}%"] for x in open_loop]))
    targets = latency + "\n\n" + table(["target", "measured", "met"], target_rows)
    return (table([f"target ({rounds} rounds, {r['seconds']} s each)", "requests/s (median)",
                   "spread (min – max)", "p50", "p99"], rows) + "\n\n" + targets
            + "\n\nCPU per request of the process serving the target (for nginx its "
            "master and workers), from `/proc/PID/stat` over each measured run, median "
            "and range over the rounds:\n\n"
            + table(["target", "user", "kernel"], cpu))


# ------------------------------------------------------------------- curves

CURVES = [
    # name, title, x label, y label, series: (label, bench prefix, units of x per iteration?)
    ("chain_length", "Chain length", "links", "ns per link",
     [("async links, typed context", "chain_length/{n}", "per_x")]),
    ("context_size", "Context size", "fields already in the context",
     "ns per execution (10 links)", [("read one field, insert one, per link", "context_size/{n}",
                                      "total")]),
    ("concurrent_executions", "Concurrent executions of one chain",
     "tasks at once (2 worker threads)", "ns per execution",
     [("10 links, one yield", "concurrent_executions/{n}", "per_x")]),
    ("balancer_nodes", "Load-balancer nodes", "nodes", "ns per pick",
     [(name, f"pick/{bench}/{{n}}", "total") for name, bench, _ in STRATEGIES]),
    ("subscriptions", "Event-bus subscriptions per event type", "subscriptions to the type",
     "ns per handling", [("publish to handled, per handling",
                          "events_subscriptions_per_type/{n}", "per_element")]),
]


def points(pattern, mode):
    """(x, y) for every parameter criterion measured under the pattern."""
    prefix, _, rest = pattern.partition("{n}")
    parent = CRITERION / prefix
    result = []
    if not parent.is_dir():
        raise Missing(prefix)
    for entry in parent.iterdir():
        if not entry.name.isdigit():
            continue
        bench = prefix + entry.name + rest
        x = int(entry.name)
        value = ns(bench)
        if mode == "per_x":
            value /= x
        elif mode == "per_element":
            value /= elements(bench)
        result.append((x, value))
    if len(result) < 2:
        raise Missing(pattern)
    return sorted(result)


def growth(series):
    """How the total cost grows over the last decade measured: the exponent k
    in total ∝ n^k (1 linear, 0 flat)."""
    (x0, y0), (x1, y1) = series[max(0, len(series) - 3)], series[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def curves():
    PLOTS.mkdir(parents=True, exist_ok=True)
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        raise Missing("gnuplot (bench/report.sh installs it)")
    rows = []
    for name, title, xlabel, ylabel, series in CURVES:
        data = [(label, points(pattern, mode), mode) for label, pattern, mode in series]
        script_lines = [
            "set terminal svg size 720,420 dynamic font 'sans,12' background rgb 'white'",
            f"set output '{PLOTS / (name + '.svg')}'",
            f"set title '{title}'", f"set xlabel '{xlabel}'", f"set ylabel '{ylabel}'",
            "set logscale xy", "set grid", "set key left top", "set format y '%g'",
        ]
        plots = []
        inline = []
        for label, values, _ in data:
            plots.append(f"'-' with linespoints lw 2 title '{label}'")
            inline += [f"{x} {y}" for x, y in values] + ["e"]
        script_lines.append("plot " + ", ".join(plots))
        script_lines += inline
        subprocess.run([gnuplot], input="\n".join(script_lines) + "\n", text=True, check=True)
        for label, values, mode in data:
            # The exponent of the total: a per-unit curve adds one.
            total_exponent = growth(values) + (0 if mode == "total" else 1)
            unit = "flat" if abs(total_exponent) < 0.2 else (
                "linear" if abs(total_exponent - 1) < 0.2 else
                ("sublinear" if total_exponent < 1 else "faster than linear"))
            first, last = values[0], values[-1]
            rows.append([title, label, f"{t(first[1])} at {first[0]:,}",
                         f"{t(last[1])} at {last[0]:,}", f"{total_exponent:.2f} ({unit})"])
    return table(["curve", "series", "smallest", "largest",
                  "growth of the total over the last decade (n^k)"], rows)


def provenance():
    def run(*command):
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    # What this report writes, and this script, do not count: only a change
    # to what was measured does.
    dirty = " (with uncommitted changes)" if run(
        "git", "status", "--porcelain", "--untracked-files=no", "--", ".",
        ":!BENCHMARKS.md", ":!SCALING.md", ":!bench/plots", ":!bench/report.py") else ""
    return (f"Generated by `bench/report.sh` at commit `{run('git', 'rev-parse', '--short', 'HEAD')}`"
            f"{dirty} on {run('date', '-u', '+%Y-%m-%d')}: {run('rustc', '--version')}, "
            f"{os.cpu_count()} × {cpu}, {run('uname', '-sr')}.")


def workers():
    """Events handled per second against worker processes, one server (R1)
    and a three-server cluster (R3): bench/workers.sh's output, as a table
    and bench/plots/workers.svg."""
    data = script("workers")
    runs = data["runs"]
    counts = sorted({run["workers"] for run in runs})
    by = {(run["servers"], run["workers"]): run for run in runs}
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        raise Missing("gnuplot (bench/report.sh installs it)")
    PLOTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "set terminal svg size 720,420 dynamic font 'sans,12' background rgb 'white'",
        f"set output '{PLOTS / 'workers.svg'}'",
        "set title 'Events handled per second against worker processes (2-core machine)'",
        "set xlabel 'worker processes'", "set ylabel 'events/s'", "set grid",
        "set key left top", "set logscale x 2", "set xtics (1, 2, 4, 8)", "set xrange [0.8:10]",
        "set yrange [0:*]",
        "plot '-' with linespoints lw 2 title 'one server, R1', "
        "'-' with linespoints lw 2 title 'three-server cluster, R3'",
    ]
    for servers in (1, 3):
        lines += [f"{n} {by[(servers, n)]['handled_per_second']:.0f}" for n in counts
                  if (servers, n) in by] + ["e"]
    subprocess.run([gnuplot], input="\n".join(lines) + "\n", text=True, check=True)
    rows = []
    for n in counts:
        one, three = by.get((1, n)), by.get((3, n))
        if one is None or three is None:
            raise Missing(f"workers: {n} workers not measured on both setups")
        cpu = lambda run: (f"{run['worker_cpu_us_per_event']:.1f} / "
                           f"{run['server_cpu_us_per_event']:.1f}")
        rows.append([n, rate(one["handled_per_second"]), rate(three["handled_per_second"]),
                     f"{100 * three['handled_per_second'] / one['handled_per_second']:.0f}%",
                     cpu(one), cpu(three)])
    publish = table(["setup", "published/s (one publisher, 256 acknowledgements outstanding)"], [
        ["one server, R1", rate(sum(by[(1, n)]["published_per_second"] for n in counts) / len(counts))],
        ["three-server cluster, R3",
         rate(sum(by[(3, n)]["published_per_second"] for n in counts) / len(counts))],
    ])
    busy = []
    for servers, name in ((1, "one server, R1"), (3, "three-server cluster, R3")):
        run = by[(servers, counts[-1])]
        cpu = run["worker_cpu_us_per_event"] + run["server_cpu_us_per_event"]
        cores = cpu * 1e-6 * run["handled_per_second"]
        busy.append([f"{name}, {counts[-1]} workers", f"{cpu:.1f} µs",
                     rate(run["handled_per_second"]),
                     f"{cores:.2f} of {data['cpus']}",
                     rate(data["cpus"] / (cpu * 1e-6))])
    limit = table(["setup", "CPU per event, workers and servers", "events/s",
                   "CPUs busy handling", "events/s if every CPU did only this"], busy)
    events = runs[0]["events"]
    return (f"{events:,} events per measurement; {data['server']}; {data['cpus']} CPUs.\n\n"
            + table(["worker processes", "one server, R1 (events/s)",
                     "three-server cluster, R3 (events/s)", "R3 / R1",
                     "R1 CPU µs per event: workers / server",
                     "R3 CPU µs per event: workers / servers"], rows)
            + "\n\n" + publish + "\n\n" + limit
            + "\n\n![Events per second against worker processes]"
            "(bench/plots/workers.svg)")


def scaling():
    """SCALING.md's measured inputs and its model of 3, 10 and 100 machines,
    computed from bench/workers.sh's output (the runs with the most
    workers, where batching is best)."""
    data = script("workers")
    if "commit" not in data:
        raise Missing("workers.json without its commit (run bench/workers.sh again)")
    most = max(run["workers"] for run in data["runs"])
    by = {run["servers"]: run for run in data["runs"] if run["workers"] == most}
    if set(by) != {1, 3}:
        raise Missing(f"workers.json: {most} workers not measured on both setups")
    r1, r3 = by[1], by[3]
    w = (r1["worker_cpu_us_per_event"] + r3["worker_cpu_us_per_event"]) / 2
    s1, s3 = r1["server_cpu_us_per_event"], r3["server_cpu_us_per_event"]
    leader = s3 / 2
    stream = 1e6 / leader  # events/s one stream's leader sustains on one core
    cores = 8

    def per_second(value):
        return rate(value)

    measured = table(["per event", "one server, R1", "three-server cluster, R3"], [
        ["CPU on the workers (pull, decode, chain, ack)",
         f"{r1['worker_cpu_us_per_event']:.1f} µs", f"{r3['worker_cpu_us_per_event']:.1f} µs"],
        ["CPU on the servers, all of them together", f"{s1:.1f} µs", f"{s3:.1f} µs"],
        [f"events/s reached on {data['cpus']} shared vCPUs", rate(r1["handled_per_second"]),
         rate(r3["handled_per_second"])],
        ["published/s, one publisher, 256 acknowledgements outstanding",
         rate(r1["published_per_second"]), rate(r3["published_per_second"])],
    ])
    symbols = (
        f"Symbols used below: `w` = {w:.1f} µs of worker CPU per event (the mean of the two "
        f"setups), `s1` = {s1:.1f} µs and `s3` = {s3:.1f} µs of server CPU per event at R1 "
        f"and R3, and `h` = the CPU your own chain spends per event. Replication costs the "
        f"servers {s3 / s1:.1f} times the CPU of R1, and a single publisher "
        f"{100 * (1 - r3['published_per_second'] / r1['published_per_second']):.0f}% of its "
        f"rate. A stream's leader is given half of `s3` (assumption 2 below): "
        f"{leader:.1f} µs per event, so one stream carries about `c` = {per_second(stream)} "
        f"events/s. The model uses two handlers: `h` = 0 (the transport alone) and `h` = "
        f"100 µs (a chain that decodes, validates and calls a service; its waiting costs no "
        f"CPU).")

    def partitions(events):
        return math.ceil(events / stream)

    rows, notes = [], []
    # 3 machines: servers and workers share all cores.
    shared = 3 * cores
    cap0, cap100 = shared / ((w + s3) * 1e-6), shared / ((w + 100 + s3) * 1e-6)
    rows.append(["3 machines", "3, sharing the machines with the workers",
                 "the same 3 machines",
                 f"all {shared} cores spent per event on `w + h + s3`: "
                 f"{per_second(cap0)} / {per_second(cap100)}", "(shared)",
                 f"{partitions(cap0)} / {partitions(cap100)}"])
    notes.append(
        f"- **3 machines.** With a real handler ({per_second(cap100)}/s) "
        f"{partitions(cap100)} {'partition' if partitions(cap100) == 1 else 'partitions'} "
        f"of about {per_second(stream)}/s each suffice; with an empty handler "
        + (f"one stream's leader is the first limit, long before the CPUs are "
           f"({partitions(cap0)} partitions keep up). " if partitions(cap0) > 1 else
           "one stream keeps up. ")
        + "Servers and workers share the cores, so the servers' `s3` is paid out of the "
        "same budget as the chain.")
    for machines, servers, label in ((10, 3, "3 dedicated"),
                                     (100, 21, "21 dedicated (7 groups of 3, or one cluster of 21)")):
        worker_cores = (machines - servers) * cores
        server_cap = servers * cores / (s3 * 1e-6)
        cap0, cap100 = worker_cores / (w * 1e-6), worker_cores / ((w + 100) * 1e-6)
        rows.append([f"{machines} machines", label,
                     f"{machines - servers} machines, {worker_cores} cores",
                     f"{per_second(cap0)} / {per_second(cap100)}",
                     f"{servers * cores} cores / {s3:.1f} µs = {per_second(server_cap)}",
                     f"{partitions(min(cap0, server_cap))} / {partitions(min(cap100, server_cap))}"])
        bound0 = "servers" if server_cap < cap0 else "workers"
        bound100 = "servers" if server_cap < cap100 else "workers"
        notes.append(
            f"- **{machines} machines.** With `h` = 100 µs the {bound100} bind first, at "
            f"{per_second(min(cap100, server_cap))}/s, which needs "
            f"{partitions(min(cap100, server_cap))} partitions; with an empty handler the "
            f"{bound0} bind, at {per_second(min(cap0, server_cap))}/s "
            f"({partitions(min(cap0, server_cap))} partitions). The servers' capacity is "
            f"{servers * cores} cores over `s3`; every partition's leader sits on one of "
            f"them (JetStream places each stream's leader; R3 keeps a replica of every "
            f"stream on three servers).")
    model = table(["deployment", "servers", "workers",
                   "worker capacity (events/s), `h` = 0 / 100 µs",
                   "server capacity (R3, events/s)",
                   "partitions needed, `h` = 0 / 100 µs"], rows)
    return (f"At {most} workers (the most batching), measured on {data['date']} at commit "
            f"`{data['commit']}`, {data['server']}:\n\n" + measured + "\n\n" + symbols
            + "\n\nCapacity of the workers is `worker cores / (w + h)`; of the servers "
            "`server cores / s3`; of the streams `c × partitions`. The smallest of the three "
            "is the throughput. Machines of 8 cores (assumption 1):\n\n" + model
            + "\n\nReading the table:\n\n" + "\n".join(notes))


TABLES = {
    "provenance": provenance,
    "chain-core": chain_core,
    "modulink-py": modulink_py,
    "circuit-breaker": circuit_breaker,
    "rate-limit": rate_limit,
    "metrics": metrics,
    "tracing": tracing,
    "validation": validation,
    "jwt": jwt,
    "balance-pick": balance_pick,
    "balance-two-threads": balance_two_threads,
    "balance-route": balance_route,
    "events": events,
    "events-nats": events_nats,
    "durable": durable,
    "workers": workers,
    "streaming": streaming,
    "router": router,
    "curves": curves,
    "scaling": scaling,
}

# Tables that live in another document than BENCHMARKS.md.
ELSEWHERE = {"scaling": ROOT / "SCALING.md"}


def main():
    only = sys.argv[sys.argv.index("--only") + 1:] if "--only" in sys.argv else list(TABLES)
    unknown = [name for name in only if name not in TABLES]
    if unknown:
        print(f"no table named {', '.join(unknown)}; tables: {', '.join(TABLES)}",
              file=sys.stderr)
        return 2
    texts = {}
    missing = []
    for name in only:
        doc = ELSEWHERE.get(name, DOC)
        if doc not in texts:
            texts[doc] = doc.read_text()
        text = texts[doc]
        render = TABLES[name]
        begin, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
        if begin not in text:
            print(f"{doc.name} has no {begin} marker", file=sys.stderr)
            missing.append(name)
            continue
        try:
            body = render()
        except Missing as gap:
            print(f"{name}: not measured ({gap}); table left as it was", file=sys.stderr)
            missing.append(name)
            continue
        texts[doc] = re.sub(re.escape(begin) + ".*?" + re.escape(end),
                            lambda _: f"{begin}\n{body}\n{end}", text, flags=re.S)
    for doc, text in texts.items():
        doc.write_text(text)
    if missing:
        print("tables not regenerated: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
