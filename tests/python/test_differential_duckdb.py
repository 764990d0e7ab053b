"""Differential tests (issue #5): random datasets — merged identities (anonymous device, login,
identified events), equal timestamps, events on a 15-minute grid so conversion windows end
exactly on events — sent with the official Mixpanel SDK; random insights, funnel and retention
queries answered by Canopy and, as the reference, by DuckDB SQL over Canopy's own export (so
identity merges are the only thing the two share). Every answer must agree.

The SQL is written from `docs/query-semantics.md`, independently of the Rust operators."""
import logging
import os
import random
import time
import unittest

import duckdb
from mixpanel import BufferedConsumer, Mixpanel

from canopy_server import CanopyServer
from duckdb_reference import (funnel_sql, insights_reference, load_events, load_profiles,
                              retention_sql)

# The SDK warns on every import that API secrets are deprecated; Canopy accepts them.
logging.getLogger("mixpanel").setLevel(logging.ERROR)

SEEDS = [int(s) for s in os.environ.get("CANOPY_DIFF_SEEDS", "1,2,3").split(",")]
QUERIES = int(os.environ.get("CANOPY_DIFF_QUERIES", "25"))
GRID = 900_000  # 15 minutes
DAYS = 8
# In the past (future times are clamped to arrival), on the grid.
BASE_MS = (int(time.time() * 1000) - (DAYS + 3) * 86_400_000) // GRID * GRID
NAMES = ["Open", "Browse", "Buy", "Share"]


def generate(rng):
    """Events as (distinct_id, name, time_s, properties) and profile sets."""
    events, profiles, n = [], [], 0
    for p in range(rng.randint(25, 45)):
        devices = ["d%d-%d" % (p, k) for k in range(rng.randint(1, 2))]
        user = "u%d" % p if rng.random() < 0.7 else None
        count = rng.randint(1, 30)
        login = rng.randint(0, count)
        t = BASE_MS + rng.randint(0, DAYS * 96) * GRID
        for i in range(count):
            if rng.random() > 0.15:  # else: the same time as the previous event
                t = BASE_MS + rng.randint(0, DAYS * 96) * GRID
            device = rng.choice(devices)
            if user is None or i < login:
                did, ids = "$device:" + device, {"$device_id": device}
            elif i == login:
                did, ids = user, {"$device_id": device, "$user_id": user}
            else:
                did, ids = user, {"$user_id": user}
            n += 1
            props = dict(ids)
            props["$insert_id"] = "e%05d" % n
            plat = rng.choice(["ios", "android", "web", None])
            if plat:
                props["plat"] = plat
            r = rng.random()
            if r < 0.55:
                props["price"] = rng.choice([rng.randint(0, 100), rng.randint(0, 200) / 2])
            elif r < 0.6:
                props["price"] = "7"
            name = rng.choices(NAMES, weights=[5, 4, 2, 1])[0]
            events.append((did, name, t // 1000, props))
        if rng.random() < 0.6:
            profiles.append((user or "$device:" + devices[0], rng.choice(["gold", "silver"])))
    return events, profiles


def random_insights(rng, lo, hi):
    names = rng.sample(NAMES, rng.randint(1, 2))
    measure = rng.choice([
        {"type": "total"}, {"type": "unique"},
        {"type": "per_person", "stat": rng.choice(["avg", "median", "max", "min"])},
        {"type": "property", "property": "price",
         "stat": rng.choice(["sum", "avg", "min", "max", "median", "p90", "p25"])},
    ])
    q = {"from_ms": lo, "to_ms": hi, "events": [{"event": e} for e in names], "measure": measure,
         "unit": rng.choice(["day", "week", "all", "hour"])}
    f = rng.choice([
        None,
        {"property": "plat", "op": "equals", "value": rng.choice(["ios", "web"])},
        {"property": "plat", "op": "not_equals", "value": "ios"},
        {"property": "plat", "op": "in", "value": ["android", "web"]},
        {"property": "plat", "op": "not_set"},
        {"property": "price", "op": "gt", "value": rng.randint(0, 100)},
        {"property": "price", "op": "between", "value": [10, 60]},
        {"property": "tier", "source": "user", "op": "equals", "value": "gold"},
        {"property": "tier", "source": "user", "op": "not_equals", "value": "gold"},
    ])
    if f:
        q["filters"] = [f]
    b = rng.choice([None, None, {"property": "plat"}, {"property": "plat", "limit": 2},
                    {"property": "tier", "source": "user", "limit": 1}])
    if b:
        q["breakdown"] = b
    return q


def canopy_cells(report):
    """(event, segment, bucket label or '*') → value, leaving out zeros and nulls."""
    cells = {}
    for s in report["series"]:
        for label, v in zip(report["buckets"], s["values"]):
            if v not in (None, 0):
                cells[(s["event"], s["segment"], label)] = float(v)
        if s["total"] not in (None, 0):
            cells[(s["event"], s["segment"], "*")] = float(s["total"])
    return cells


def assert_close(test, got, want, context):
    test.assertEqual(sorted(got, key=repr), sorted(want, key=repr), context)
    for k in want:
        test.assertAlmostEqual(got[k], want[k], delta=1e-6 * max(1.0, abs(want[k])),
                               msg="%s at %s" % (context, k))


class DifferentialAgainstDuckDB(unittest.TestCase):
    def run_seed(self, seed):
        rng = random.Random(seed)
        server = CanopyServer()
        try:
            server.put_json("/api/v1/settings", dict(server.get_json("/api/v1/settings")["settings"],
                                                     timezone="Asia/Kolkata"))
            u = server.url
            consumer = BufferedConsumer(max_size=50, events_url=u + "/track", people_url=u + "/engage",
                                        import_url=u + "/import")
            mp = Mixpanel(server.project["token"], consumer=consumer)
            events, profiles = generate(rng)
            for did, name, t, props in events:
                mp.import_data(server.project["token"], did, name, t, props,
                               api_secret=server.project["api_secret"])
            # The buffered consumer keeps the credentials of the last call: flush the imports
            # (sent with the API secret) before the profile updates (sent without).
            consumer.flush()
            for did, tier in profiles:
                mp.people_set(did, {"tier": tier})
            consumer.flush()
            db = duckdb.connect()
            exported = server.get("/api/2.0/export?from_date=1971-01-01&to_date=2100-01-01&time_in_ms=true")
            self.assertEqual(len(exported), len(events))
            load_events(db, exported)
            load_profiles(db, server)
            lo_all, hi_all = BASE_MS, BASE_MS + (DAYS * 96 + 1) * GRID
            for i in range(QUERIES):
                a, b = sorted(rng.randint(lo_all - GRID, hi_all) for _ in range(2))
                if b - a < GRID:
                    b = a + DAYS * 86_400_000
                self.check_insights(server, db, random_insights(rng, a, b), seed, i)
                self.check_funnel(server, db, rng, a, b, seed, i)
                self.check_retention(server, db, rng, a, b, seed, i)
        finally:
            server.stop()

    def check_insights(self, server, db, q, seed, i):
        report = server.put_json("/api/v1/query/insights", q, method="POST")
        want = insights_reference(db, q, report["buckets"])
        assert_close(self, canopy_cells(report), want, "seed %d query %d insights %s" % (seed, i, q))

    def check_funnel(self, server, db, rng, a, b, seed, i):
        steps = [{"event": rng.choice(NAMES[:3])} for _ in range(rng.randint(2, 3))]
        if rng.random() < 0.3:
            steps[-1]["where"] = 'properties["plat"] == "ios"'
        window = rng.choice([GRID, 4 * GRID, 86_400_000, 3 * 86_400_000])
        q = {"from_ms": a, "to_ms": b, "steps": steps, "window_ms": window}
        got = [s["count"] for s in server.put_json("/api/v1/query/funnel", q, method="POST")["steps"]]
        self.assertEqual(got, funnel_sql(db, q), "seed %d query %d funnel %s" % (seed, i, q))

    def check_retention(self, server, db, rng, a, b, seed, i):
        born, ret = rng.choice(NAMES[:3]), rng.choice(NAMES[:3])
        q = {"from_ms": a, "to_ms": b, "born": {"event": born}, "returned": {"event": ret},
             "unit": "day", "brackets": rng.randint(1, 5),
             "kind": rng.choice(["first_time", "recurring"]), "unbounded": rng.random() < 0.3}
        got = {c["date"]: (c["people"], c["counts"])
               for c in server.put_json("/api/v1/query/retention", q, method="POST")["cohorts"]}
        self.assertEqual(got, retention_sql(db, q), "seed %d query %d retention %s" % (seed, i, q))

    def test_random_datasets_and_queries_agree_with_duckdb(self):
        for seed in SEEDS:
            with self.subTest(seed=seed):
                self.run_seed(seed)


if __name__ == "__main__":
    unittest.main()
