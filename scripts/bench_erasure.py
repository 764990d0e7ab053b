"""Erasure benchmark (issue #6): request → receipt latency for one person and for a burst of 100
requests on the analytics dataset (10M events by default), side by side in one run with
ClickHouse's `ALTER TABLE … DELETE` mutation (Debian clickhouse-server; timed until
`system.mutations` shows it done, i.e. the parts are rewritten) and DuckDB's `DELETE` + `CHECKPOINT`, on the same
data. Every engine deletes the same persons; each answer is checked (the person's rows are
gone, everyone else's are still there). Run through `scripts/bench-erasure`.

Canopy's time is the client's: POST the request, poll until the receipt exists (the receipt
is only written after the verifying scan). ClickHouse's table is laid out for analytics as in
the analytics benchmark (ORDER BY event, day, person); DuckDB's as loaded there.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_analytics import CHUNK, DAY, Canopy, generate, import_into_canopy  # noqa: E402
from bench_clickhouse import ch_query, ensure_clickhouse, start_clickhouse  # noqa: E402



def canopy_erase(canopy, ids):
    """Files one erasure per id at once; returns seconds until every receipt exists."""
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(ids), 16)) as pool:
        created = list(pool.map(lambda i: json.loads(canopy.request(
            "/api/v1/dsr/erasures", {"distinct_ids": [i]})), ids))
    pending = {c["id"] for c in created}
    receipts = {}
    while pending:
        for rid in list(pending):
            r = json.loads(canopy.request("/api/v1/dsr/requests/%s" % rid))
            if r["status"] == "completed":
                receipts[rid] = r["receipt"]
                pending.discard(rid)
            elif r["status"] in ("failed", "cancelled"):
                raise RuntimeError("erasure %s %s" % (rid, r["status"]))
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    assert all(r["verification"]["passed"] for r in receipts.values())
    return elapsed, sum(r["rows_removed"] for r in receipts.values())


def ch_delete(ch, where):
    """ALTER TABLE … DELETE, returning when the mutation has rewritten every part."""
    ch_query(ch, "ALTER TABLE events DELETE WHERE %s" % where)
    while int(ch_query(ch, "SELECT count() FROM system.mutations WHERE table = 'events' AND is_done = 0").strip()):
        time.sleep(0.01)


def canopy_count(canopy):
    """Events left, counted from the streamed raw export (never held in memory at once)."""
    url = "%s/api/2.0/export?from_date=2026-01-01&to_date=2027-12-31&project_id=%d" % (
        canopy.url, canopy.project["id"])
    req = urllib.request.Request(url)
    token = open(os.path.join(canopy.data, "admin.token")).read().strip()
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=3600) as r:
        return sum(1 for line in r if line.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--big", action="store_true", help="100M events")
    ap.add_argument("--persons", type=int, default=500_000)
    ap.add_argument("--singles", type=int, default=5, help="one-person erasures to time")
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", default=None, help="keep the generated data and loaded Canopy here")
    args = ap.parse_args()
    n = 100_000_000 if args.big else args.events
    tmp = args.workdir or tempfile.mkdtemp(prefix="canopy-bench-erasure-")
    os.makedirs(tmp, exist_ok=True)
    # ClickHouse keeps each mutation's old parts for minutes: the 100M run peaked near 25 GB
    # (a copy of Canopy's data, ClickHouse's parts old and new, DuckDB, one load chunk).
    need = 250 * n
    free = shutil.disk_usage(tmp).free
    if free < need:
        sys.exit("bench-erasure: %.0f GB free under %s, %.0f GB needed for %d events"
                 % (free / 1e9, tmp, need / 1e9, n))
    parquet = os.path.join(tmp, "events.parquet")
    if not os.path.exists(parquet):
        pq.write_table(generate(n, args.persons), parquet, row_group_size=1_000_000)
    run = os.path.join(tmp, "run")
    shutil.rmtree(run, ignore_errors=True)

    # Canopy: a loaded copy is kept in the workdir; each run erases from a fresh copy of it.
    pristine = os.path.join(tmp, "canopy-pristine")
    if not os.path.exists(os.path.join(pristine, "loaded")):
        shutil.rmtree(pristine, ignore_errors=True)
        os.makedirs(pristine)
        c = Canopy(args.bin, pristine)
        t = time.time()
        import_into_canopy(args.bin, c, parquet, n, tmp)
        c.stop()
        c.start()
        c.settle()
        c.stop()
        open(os.path.join(pristine, "loaded"), "w").close()
        print("loaded Canopy in %.0f s" % (time.time() - t), flush=True)
    shutil.copytree(pristine, run)
    canopy = Canopy(args.bin, run)
    canopy.settle()

    ensure_clickhouse()
    ch_proc, ch = start_clickhouse(run)
    # Debian's clickhouse-server is old (18.x): no LowCardinality, no Parquet input, no
    # mutations_sync — the data goes in as TSV and each mutation is waited for in
    # system.mutations, which is what mutations_sync = 2 does in newer releases.
    ch_query(ch, "CREATE TABLE events (iid Int64, person String, event String, time Int64, plat String, "
                 "country String, app_version String, price Nullable(Float64), level Nullable(Float64)) "
                 "ENGINE = MergeTree ORDER BY (event, intDiv(time, %d), person)" % DAY)
    tsv = os.path.join(run, "events.tsv")
    for lo in range(0, n, CHUNK):
        duckdb.connect().execute("COPY (SELECT iid, person, event, time, plat, country, app_version, price, level "
                                 "FROM read_parquet('%s') WHERE iid >= %d AND iid < %d) TO '%s' (FORMAT CSV, "
                                 "DELIMITER '\t', HEADER false, NULLSTR '\\N')" % (parquet, lo, lo + CHUNK, tsv))
        with open(tsv, "rb") as f:
            req = urllib.request.Request(ch + "/?query=" + urllib.parse.quote("INSERT INTO events FORMAT TabSeparated"),
                                         data=f)
            req.add_header("Content-Length", str(os.path.getsize(tsv)))
            urllib.request.urlopen(req, timeout=3600).read()
        os.remove(tsv)
    ch_query(ch, "OPTIMIZE TABLE events FINAL")
    duck = duckdb.connect(os.path.join(run, "duck.db"))
    duck.execute("CREATE TABLE events AS SELECT * FROM read_parquet('%s') ORDER BY event, time" % parquet)
    duck.execute("CHECKPOINT")

    # Persons to erase: typical ones (10–200 events), the same for every engine.
    counts = duck.execute("SELECT person, count(*) FROM events GROUP BY person HAVING count(*) BETWEEN 10 AND 200 "
                          "ORDER BY hash(person) LIMIT %d" % (args.singles + args.burst)).fetchall()
    singles, burst = [p for p, _ in counts[:args.singles]], [p for p, _ in counts[args.singles:]]
    expected = dict(counts)
    total = duck.execute("SELECT count(*) FROM events").fetchone()[0]

    results = {"canopy": [], "clickhouse": [], "duckdb": []}
    for p in singles:
        s, rows = canopy_erase(canopy, [p])
        assert rows == expected[p], (p, rows, expected[p])
        results["canopy"].append(s)
        t = time.perf_counter()
        ch_delete(ch, "person = '%s'" % p)
        results["clickhouse"].append(time.perf_counter() - t)
        t = time.perf_counter()
        duck.execute("DELETE FROM events WHERE person = '%s'" % p)
        duck.execute("CHECKPOINT")
        results["duckdb"].append(time.perf_counter() - t)
        print("single %s: canopy %.3f s, clickhouse %.3f s, duckdb %.3f s" % (
            p, results["canopy"][-1], results["clickhouse"][-1], results["duckdb"][-1]), flush=True)

    bursts = {}
    s, rows = canopy_erase(canopy, burst)
    assert rows == sum(expected[p] for p in burst)
    bursts["canopy"] = s
    in_list = ",".join("'%s'" % p for p in burst)
    t = time.perf_counter()
    ch_delete(ch, "person IN (%s)" % in_list)
    bursts["clickhouse"] = time.perf_counter() - t
    t = time.perf_counter()
    duck.execute("DELETE FROM events WHERE person IN (%s)" % in_list)
    duck.execute("CHECKPOINT")
    bursts["duckdb"] = time.perf_counter() - t

    # Everyone erased is gone everywhere; everyone else is intact.
    removed = sum(expected[p] for p in singles + burst)
    left = {"canopy": canopy_count(canopy),
            "clickhouse": int(ch_query(ch, "SELECT count() FROM events").strip()),
            "duckdb": duck.execute("SELECT count(*) FROM events").fetchone()[0]}
    assert all(v == total - removed for v in left.values()), (left, total, removed)
    canopy.stop()
    ch_proc.terminate()
    ch_proc.wait()

    m = {e: statistics.median(v) for e, v in results.items()}
    print("\n%d events, %d persons; one person = median of %d erasures (%d–%d events each); "
          "burst = %d persons\n" % (n, args.persons, len(singles), min(expected[p] for p in singles),
                                    max(expected[p] for p in singles), len(burst)))
    print("| Erasure | Canopy (request → signed receipt) | ClickHouse ALTER … DELETE | DuckDB DELETE + CHECKPOINT "
          "| ClickHouse/Canopy | DuckDB/Canopy |")
    print("|---|---:|---:|---:|---:|---:|")
    print("| one person | %.3f s | %.3f s | %.3f s | %.1f× | %.1f× |" % (
        m["canopy"], m["clickhouse"], m["duckdb"], m["clickhouse"] / m["canopy"], m["duckdb"] / m["canopy"]))
    print("| burst of %d | %.3f s | %.3f s | %.3f s | %.1f× | %.1f× |" % (
        len(burst), bursts["canopy"], bursts["clickhouse"], bursts["duckdb"],
        bursts["clickhouse"] / bursts["canopy"], bursts["duckdb"] / bursts["canopy"]))
    print("\nAll engines agree: %d rows left of %d." % (total - removed, total))
    if not args.workdir:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
