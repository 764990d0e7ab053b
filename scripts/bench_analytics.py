"""Analytics benchmark (issue #5): one dataset loaded into Canopy, DuckDB and chDB (embedded
ClickHouse); four reports run interleaved on all three; medians, ratios, agreement, and
Canopy's peak memory. Run through `scripts/bench-analytics` (which prepares the venv and the
release build). Prints a Markdown table for docs/benchmarks.md.

Queries (one event of ~40 Zipf-distributed names, 90 days, UTC days):
  (a) daily count + unique persons of one event   (b) breakdown by a property, top 10 + other
  (c) 3-step funnel, 7-day window                  (d) weekly first-time retention, 8 brackets
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

import chdb.session
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY = 86_400_000
WEEK = 7 * DAY
START = 1_785_542_400_000  # 2026-08-01T00:00:00Z
SPAN = 90 * DAY
NAMES = ["App Open", "Story Viewed", "Screen Viewed", "Button Tapped", "Video Played", "Purchase"] + \
        ["Event %02d" % i for i in range(6, 40)]
FUNNEL = ["App Open", "Story Viewed", "Purchase"]


def generate(n, persons, seed=42):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(NAMES) + 1) ** 1.1
    name = rng.choice(len(NAMES), n, p=weights / weights.sum())
    # Skewed activity: a few heavy users, a long tail of light ones.
    person = (persons * rng.random(n) ** 1.6).astype(np.int64)
    t = START + rng.integers(0, SPAN, n)
    countries = ["US", "IN", "GB", "DE", "FR", "BR", "CA", "AU", "JP", "MX", "ES", "IT", "NL", "SE", "PL",
                 "ID", "PH", "NG", "KE", "ZA", "AR", "CL", "CO", "EG", "TR", "VN", "TH", "KR", "SG", "NZ"]
    cw = 1.0 / np.arange(1, len(countries) + 1) ** 0.9
    price = np.where(name == NAMES.index("Purchase"), rng.integers(1, 100, n) + 0.99, np.nan)
    level = np.where(np.isin(name, [1, 4, 7, 9]), rng.integers(1, 50, n).astype(float), np.nan)
    return pa.table({
        "iid": pa.array(np.arange(n, dtype=np.int64)),
        "person": pa.array(np.char.add("p", person.astype(str))),
        "event": pa.array(np.array(NAMES, dtype=object)[name]),
        "time": pa.array(t),
        "plat": pa.array(np.array(["ios", "android", "web"], dtype=object)[rng.choice(3, n, p=[.45, .4, .15])]),
        "country": pa.array(np.array(countries, dtype=object)[rng.choice(len(countries), n, p=cw / cw.sum())]),
        "app_version": pa.array(np.array(["3.%d" % i for i in range(8)], dtype=object)[rng.integers(0, 8, n)]),
        "price": pa.array(price, mask=np.isnan(price)),
        "level": pa.array(level, mask=np.isnan(level)),
    })


# ---------------------------------------------------------------- SQL (DuckDB and ClickHouse)

def sql_daily(dialect, event):
    uniq = "uniqExact(person)" if dialect == "ch" else "count(DISTINCT person)"
    day = "intDiv(time, %d)" % DAY if dialect == "ch" else "time // %d" % DAY
    return ("SELECT %s AS d, count(*), %s FROM events WHERE event = '%s' AND time >= %d AND time < %d "
            "GROUP BY d ORDER BY d" % (day, uniq, event, START, START + SPAN))


def sql_breakdown(event):
    return ("WITH c AS (SELECT country, count(*) AS n FROM events WHERE event = '%s' AND time >= %d AND time < %d "
            "GROUP BY country), top AS (SELECT country, n FROM c ORDER BY n DESC, country LIMIT 10) "
            "SELECT country, n FROM top UNION ALL SELECT '$other', sum(n) FROM c WHERE country NOT IN "
            "(SELECT country FROM top)" % (event, START, START + SPAN))


def sql_funnel_duckdb():
    a, b, c = FUNNEL
    return ("WITH s1 AS (SELECT person, time AS t1 FROM events WHERE event = '%s' AND time >= %d AND time < %d), "
            "s2 AS (SELECT s1.person, s1.t1, min(e.time) AS t2 FROM s1 JOIN events e ON e.person = s1.person "
            "AND e.event = '%s' AND e.time > s1.t1 AND e.time <= s1.t1 + %d GROUP BY s1.person, s1.t1), "
            "s3 AS (SELECT DISTINCT s2.person FROM s2 JOIN events e ON e.person = s2.person AND e.event = '%s' "
            "AND e.time > s2.t2 AND e.time <= s2.t1 + %d) "
            "SELECT (SELECT count(DISTINCT person) FROM s1), (SELECT count(DISTINCT person) FROM s2), "
            "(SELECT count(*) FROM s3)" % (a, START, START + SPAN, b, WEEK, c, WEEK))


def sql_funnel_ch():
    a, b, c = FUNNEL
    return ("SELECT countIf(l >= 1), countIf(l >= 2), countIf(l >= 3) FROM (SELECT person, windowFunnel(%d)(toUInt64(time), "
            "event = '%s' AND time < %d, event = '%s', event = '%s') AS l FROM events WHERE event IN ('%s', '%s', '%s') "
            "AND time >= %d AND time < %d GROUP BY person)"
            % (WEEK, a, START + SPAN, b, c, a, b, c, START, START + SPAN + WEEK))


def sql_retention(dialect):
    first = "argMin(iid, time)" if dialect == "ch" else "arg_min(iid, time)"
    div = (lambda x, y: "intDiv(%s, %s)" % (x, y)) if dialect == "ch" else (lambda x, y: "(%s) // %s" % (x, y))
    day = div("bt", DAY)
    cohort = "(%s - ((%s + 3) %% 7))" % (day, day)  # the Monday of the birth's UTC week (days since 1970)
    return ("WITH b AS (SELECT person, min(time) AS bt, %s AS biid FROM events WHERE event = 'App Open' GROUP BY person), "
            "c AS (SELECT person, bt, biid, %s AS cohort FROM b WHERE bt >= %d AND bt < %d), "
            "r AS (SELECT DISTINCT c.person AS person, c.cohort AS cohort, %s AS k FROM c JOIN events e ON e.person = c.person "
            "AND e.event = 'App Open' AND e.time >= c.bt AND e.iid != c.biid AND e.time < c.bt + %d) "
            "SELECT cohort, -1 AS k, count(*) AS n FROM c GROUP BY cohort UNION ALL "
            "SELECT cohort, k, count(*) FROM r GROUP BY cohort, k"
            % (first, cohort, START, START + SPAN, div("e.time - c.bt", WEEK), 8 * WEEK))


def normalize(kind, rows):
    """Engine rows → a comparable structure."""
    if kind == "a":
        return {int(d): (int(n), int(u)) for d, n, u in rows}
    if kind == "b":
        return {str(k): int(v) for k, v in rows}
    if kind == "c":
        return [int(x) for x in rows[0]]
    out = {}
    for cohort, k, n in rows:
        people, counts = out.get(int(cohort), (0, [0] * 8))
        if int(k) < 0:
            people = int(n)
        else:
            counts[int(k)] = int(n)
        out[int(cohort)] = (people, counts)
    return out


# ---------------------------------------------------------------- Canopy

class Canopy:
    # `[query] column_cache_mb` for the server, when set (the 100M run's columns exceed the
    # default 4 GiB cache).
    column_cache_mb = None

    def __init__(self, binary, tmp):
        self.bin, self.data = binary, os.path.join(tmp, "canopy-data")
        saved = os.path.join(tmp, "canopy-project.json")
        if os.path.exists(saved):
            self.project = json.load(open(saved))
        else:
            os.makedirs(self.data)
            out = subprocess.run([binary, "project", "create", "bench", "--json", "--data-dir", self.data],
                                 check=True, capture_output=True, text=True)
            self.project = json.loads(out.stdout)
            json.dump(self.project, open(saved, "w"))
        self.start()

    def start(self):
        env = dict(os.environ)
        if self.column_cache_mb is not None:
            config = self.data + ".bench.toml"
            with open(config, "w") as f:
                f.write("[query]\ncolumn_cache_mb = %d\n" % self.column_cache_mb)
            env["CANOPY_CONFIG"] = config
        self.proc = subprocess.Popen([self.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(600):
            try:
                info = json.load(open(os.path.join(self.data, "server.json")))
                if info["pid"] == self.proc.pid:
                    self.url = info["url"]
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("canopy did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=600)

    def request(self, path, body=None):
        # The local admin token (in the data dir) with project_id, as the CLI authenticates.
        sep = "&" if "?" in path else "?"
        url = "%s%s%sproject_id=%d" % (self.url, path, sep, self.project["id"])
        req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
        token = open(os.path.join(self.data, "admin.token")).read().strip()
        req.add_header("Authorization", "Bearer " + token)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=3600) as r:
            return r.read().decode()

    def metric(self, name):
        for line in self.request("/metrics").splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
        return None

    def settle(self):
        """Waits until everything is in segments and compaction is idle."""
        last, stable = None, 0
        while stable < 3:
            time.sleep(2)
            now = (self.metric("canopy_store_tail_rows"), self.metric("canopy_store_segments"))
            stable = stable + 1 if now == last and now[0] == 0 else 0
            last = now
        return last

    def peak_rss_reset(self):
        with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
            f.write("5")

    def peak_rss_mb(self):
        for line in open("/proc/%d/status" % self.proc.pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def query(self, kind):
        if kind == "a":
            r = json.loads(self.request("/api/v1/query/insights", {
                "from_ms": START, "to_ms": START + SPAN, "events": [{"event": "Story Viewed"}], "unit": "day",
                "measures": [{"type": "total"}, {"type": "unique"}]}))
            first = START // DAY
            by = {s["measure"]: s["values"] for s in r["series"]}
            t, u = by.get(0, []), by.get(1, [])
            return {first + i: (t[i], u[i]) for i in range(len(t)) if t[i]}
        if kind == "b":
            r = json.loads(self.request("/api/v1/query/insights", {
                "from_ms": START, "to_ms": START + SPAN, "events": [{"event": "App Open"}], "unit": "all",
                "breakdown": {"property": "country", "limit": 10}}))
            return {s["segment"]: s["total"] for s in r["series"]}
        if kind == "c":
            r = json.loads(self.request("/api/v1/query/funnel", {
                "from_ms": START, "to_ms": START + SPAN, "window_ms": WEEK,
                "steps": [{"event": e} for e in FUNNEL]}))
            return [s["count"] for s in r["steps"]]
        r = json.loads(self.request("/api/v1/query/retention", {
            "from_ms": START, "to_ms": START + SPAN, "born": {"event": "App Open"}, "unit": "week",
            "brackets": 8, "kind": "first_time"}))
        out = {}
        for c in r["cohorts"]:
            days = (np.datetime64(c["date"]) - np.datetime64("1970-01-01")).astype(int)
            out[int(days)] = (c["people"], c["counts"])
        return out


CHUNK = 10_000_000


def import_into_canopy(binary, canopy, parquet, n, tmp):
    """Imports the dataset through `canopy import` (i.e. /import) in chunks of 10M events, so
    100M never needs its whole NDJSON on disk at once."""
    duck = duckdb.connect()
    for lo in range(0, n, CHUNK):
        ndjson = os.path.join(tmp, "events-%d.ndjson" % lo)
        duck.execute("COPY (SELECT event, json_merge_patch('{}', json_object('time', time, 'distinct_id', person, "
                     "'$insert_id', iid::VARCHAR, 'plat', plat, 'country', country, 'app_version', app_version, "
                     "'price', price, 'level', level)) AS properties FROM read_parquet('%s') "
                     "WHERE iid >= %d AND iid < %d) TO '%s' (FORMAT JSON)" % (parquet, lo, lo + CHUNK, ndjson))
        subprocess.run([binary, "import", ndjson, "--project", str(canopy.project["id"]), "--data-dir", canopy.data],
                       check=True, stdout=subprocess.DEVNULL)
        os.remove(ndjson)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--big", action="store_true", help="100M events")
    ap.add_argument("--persons", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", default=None, help="keep the data here (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="query the data already loaded in --workdir")
    ap.add_argument("--column-cache-mb", type=int, default=None,
                    help="Canopy's [query] column_cache_mb (default: Canopy's own; 12288 with --big)")
    args = ap.parse_args()
    n = 100_000_000 if args.big else args.events
    Canopy.column_cache_mb = args.column_cache_mb or (12288 if args.big else None)
    tmp = args.workdir or tempfile.mkdtemp(prefix="canopy-bench-analytics-")
    os.makedirs(tmp, exist_ok=True)
    if args.reuse and os.path.exists(os.path.join(tmp, "loaded")):
        duck = duckdb.connect(os.path.join(tmp, "duck.db"))
        ch = chdb.session.Session(os.path.join(tmp, "chdb"))
        canopy = Canopy(args.bin, tmp)
        canopy.settle()
        return measure(args, n, tmp, duck, ch, canopy)
    t0 = time.time()
    table = generate(n, args.persons)
    parquet = os.path.join(tmp, "events.parquet")
    pq.write_table(table, parquet, row_group_size=1_000_000)
    del table
    print("generated %d events in %.0f s" % (n, time.time() - t0), flush=True)

    duck = duckdb.connect(os.path.join(tmp, "duck.db"))
    duck.execute("CREATE TABLE events AS SELECT * FROM read_parquet('%s') ORDER BY event, time" % parquet)
    ch = chdb.session.Session(os.path.join(tmp, "chdb"))
    ch.query("CREATE TABLE events (iid Int64, person String, event LowCardinality(String), time Int64, "
             "plat LowCardinality(String), country LowCardinality(String), app_version LowCardinality(String), "
             "price Nullable(Float64), level Nullable(Float64)) ENGINE = MergeTree ORDER BY (event, intDiv(time, %d), person)"
             % DAY)
    ch.query("INSERT INTO events SELECT * FROM file('%s', Parquet)" % parquet)
    print("loaded DuckDB and chDB in %.0f s" % (time.time() - t0), flush=True)

    canopy = Canopy(args.bin, tmp)
    t1 = time.time()
    import_into_canopy(args.bin, canopy, parquet, n, tmp)
    canopy.stop()  # flushes the tail into segments
    canopy.start()
    segments = canopy.settle()
    print("loaded Canopy in %.0f s (%s segments)" % (time.time() - t1, int(segments[1])), flush=True)
    open(os.path.join(tmp, "loaded"), "w").close()
    measure(args, n, tmp, duck, ch, canopy)


def measure(args, n, tmp, duck, ch, canopy):
    engines = {
        "canopy": lambda k: canopy.query(k),
        "duckdb": lambda k: normalize(k, duck.execute(
            {"a": sql_daily("duck", "Story Viewed"), "b": sql_breakdown("App Open"), "c": sql_funnel_duckdb(),
             "d": sql_retention("duck")}[k]).fetchall()),
        "chdb": lambda k: normalize(k, [line.split("\t") for line in str(ch.query(
            {"a": sql_daily("ch", "Story Viewed"), "b": sql_breakdown("App Open"), "c": sql_funnel_ch(),
             "d": sql_retention("ch")}[k], "TabSeparated")).splitlines() if line]),
    }
    times = {(k, e): [] for k in "abcd" for e in engines}
    answers = {}
    canopy.peak_rss_reset()
    for r in range(args.rounds):
        for k in "abcd":
            for e, run in engines.items():
                s = time.perf_counter()
                out = run(k)
                times[(k, e)].append(time.perf_counter() - s)
                answers.setdefault((k, e), out)
        print("round %d done" % (r + 1), flush=True)
    peak = canopy.peak_rss_mb()
    canopy.stop()

    labels = {"a": "(a) daily count + uniques, 1 event", "b": "(b) breakdown by country, top 10 + other",
              "c": "(c) 3-step funnel, 7-day window", "d": "(d) weekly retention, 8 brackets"}
    print("\n%d events, %d persons, 90 days; median of %d interleaved rounds (seconds)\n" % (n, args.persons, args.rounds))
    print("| Query | Canopy | DuckDB | chDB | Canopy/DuckDB | Canopy/chDB | Agree |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for k in "abcd":
        m = {e: statistics.median(times[(k, e)]) for e in engines}
        agree = answers[(k, "canopy")] == answers[(k, "duckdb")] == answers[(k, "chdb")]
        print("| %s | %.3f | %.3f | %.3f | %.2f | %.2f | %s |" % (
            labels[k], m["canopy"], m["duckdb"], m["chdb"], m["canopy"] / m["duckdb"], m["canopy"] / m["chdb"],
            "yes" if agree else "NO"))
        if not agree:
            for e in engines:
                print("    %s: %s" % (e, str(answers[(k, e)])[:600]))
    print("\nCanopy server peak RSS during the queries: %.0f MB" % peak)
    # The first round reads the columns from the encrypted segments into the column cache.
    print("Canopy first round (cold column cache): " + ", ".join(
        "(%s) %.3f s" % (k, times[(k, "canopy")][0]) for k in "abcd"))
    if not args.workdir:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
