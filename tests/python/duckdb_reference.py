"""Reference answers in DuckDB SQL for the differential tests, written from
`docs/query-semantics.md`: events from Canopy's export (distinct_id = the person after
merges), profiles from Canopy's engage API, local time in Asia/Kolkata (UTC+05:30, no DST)."""
import datetime

IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))


def _labels(t_ms):
    local = datetime.datetime.fromtimestamp(t_ms / 1000, IST)
    monday = local.date() - datetime.timedelta(days=local.weekday())
    return (local.strftime("%Y-%m-%d %H:00"), local.strftime("%Y-%m-%d"), monday.isoformat())


def load_events(db, exported):
    rows = []
    for r in exported:
        p = r["properties"]
        t = int(p["time"])  # ms: exported with time_in_ms
        price = p.get("price")
        num = float(price) if isinstance(price, (int, float)) and not isinstance(price, bool) else None
        rows.append((p["distinct_id"], r["event"], t, int(p["mp_processing_time_ms"]), p["$insert_id"],
                     p.get("plat"), num) + _labels(t))
    db.execute("CREATE TABLE ev (person VARCHAR, name VARCHAR, t BIGINT, recv BIGINT, iid VARCHAR, "
               "plat VARCHAR, price_num DOUBLE, lhour VARCHAR, lday VARCHAR, lweek VARCHAR)")
    db.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def load_profiles(db, server):
    out, page = [], 0
    while True:
        r = server.get_json("/api/query/engage?page=%d" % page)
        out += [(x["$distinct_id"], x["$properties"].get("tier")) for x in r["results"]]
        if len(r["results"]) < r["page_size"]:
            break
        page += 1
    db.execute("CREATE TABLE prof (person VARCHAR, tier VARCHAR)")
    if out:
        db.executemany("INSERT INTO prof VALUES (?, ?)", out)


def _lit(v):
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(float(v))


def _filter_sql(f):
    column = "p.tier" if f.get("source") == "user" else \
        ("e.price_num" if f["property"] == "price" else "e." + f["property"])
    op, v = f["op"], f.get("value")
    if op in ("equals", "not_equals"):
        positive = "coalesce(%s = %s, false)" % (column, _lit(v))
    elif op in ("in", "not_in"):
        positive = "coalesce(%s IN (%s), false)" % (column, ", ".join(_lit(x) for x in v))
    elif op == "gt":
        positive = "coalesce(%s > %s, false)" % (column, _lit(v))
    elif op == "between":
        positive = "coalesce(%s >= %s AND %s <= %s, false)" % (column, _lit(v[0]), column, _lit(v[1]))
    elif op == "not_set":
        positive = "%s IS NULL" % column
    else:
        raise ValueError(op)
    return "NOT " + positive if op.startswith("not_") and op != "not_set" else positive


STATS = {"sum": "sum(%s)", "avg": "avg(%s)", "min": "min(%s)", "max": "max(%s)", "median": "median(%s)"}


def _stat(stat, x):
    if stat.startswith("p") and stat not in STATS:
        return "quantile_cont(%s, %s)" % (x, int(stat[1:]) / 100)
    return STATS[stat] % x


def _aggregate(db, q, seg_sql, with_bucket):
    unit = q.get("unit", "day")
    bucket = {"hour": "e.lhour", "day": "e.lday", "week": "e.lweek"}.get(unit) if with_bucket else None
    names = ", ".join(_lit(e["event"]) for e in q["events"])
    where = ["e.t >= %d" % q["from_ms"], "e.t < %d" % q["to_ms"], "e.name IN (%s)" % names]
    where += [_filter_sql(f) for f in q.get("filters", [])]
    base = ("SELECT e.name, %s AS seg, %s AS bucket, e.person, e.price_num AS val FROM ev e "
            "LEFT JOIN prof p ON p.person = e.person WHERE %s") % (seg_sql, bucket or "'*'", " AND ".join(where))
    m = q["measure"]
    if m["type"] == "total":
        sql = "SELECT name, seg, bucket, count(*) FROM (%s) GROUP BY ALL" % base
    elif m["type"] == "unique":
        sql = "SELECT name, seg, bucket, count(DISTINCT person) FROM (%s) GROUP BY ALL" % base
    elif m["type"] == "per_person":
        inner = "SELECT name, seg, bucket, person, count(*) AS n FROM (%s) GROUP BY ALL" % base
        sql = "SELECT name, seg, bucket, %s FROM (%s) GROUP BY name, seg, bucket" % (
            _stat(m["stat"], "n::DOUBLE"), inner)
    else:
        sql = "SELECT name, seg, bucket, %s FROM (%s) GROUP BY ALL" % (_stat(m["stat"], "val"), base)
    return {(n, s, b): v for n, s, b, v in db.execute(sql).fetchall()}


def _seg_sql(q):
    b = q.get("breakdown")
    if not b:
        return "NULL::VARCHAR"
    return "p.tier" if b.get("source") == "user" else "e." + b["property"]


def _top(whole, limit):
    """Canopy's choice: per event, the `limit` largest whole-range values (ties by segment,
    not-set first); the union over events."""
    keep, by_event = [], {}
    for (name, seg, _), v in whole.items():
        by_event.setdefault(name, []).append((seg, v))
    for name in sorted(by_event):
        segs = sorted(by_event[name], key=lambda sv: (-(sv[1] if sv[1] is not None else -1e308),
                                                     sv[0] is not None, sv[0] or ""))
        for seg, _ in segs[:limit]:
            if seg not in keep:
                keep.append(seg)
    distinct = max(len(v) for v in by_event.values()) if by_event else 0
    return keep if distinct > limit else None


def insights_reference(db, q, labels):
    seg = _seg_sql(q)
    b = q.get("breakdown")
    if b:
        keep = _top(_aggregate(db, q, seg, False), b.get("limit", 10))
        if keep is not None:
            kept = ", ".join(_lit(s) for s in keep if s is not None) or "NULL"
            unset = "NULL" if None in keep else "'$other'"
            seg = "CASE WHEN %s IS NULL THEN %s WHEN %s IN (%s) THEN %s ELSE '$other' END" % (
                seg, unset, seg, kept, seg)
    cells = dict(_aggregate(db, q, seg, False))
    if q.get("unit", "day") != "all":
        cells.update(_aggregate(db, q, seg, True))
    out = {}
    for (name, s, bucket), v in cells.items():
        if v is None or v == 0:
            continue
        assert bucket == "*" or bucket in labels, (bucket, labels)
        out[(name, s, bucket)] = float(v)
    return out


def _step(alias, step):
    cond = "%s.name = %s" % (alias, _lit(step["event"]))
    if step.get("where"):
        assert step["where"] == 'properties["plat"] == "ios"'
        cond += " AND %s.plat = 'ios'" % alias
    return cond


def funnel_sql(db, q):
    """Per person, the furthest step of any attempt entered in range; the earliest next
    matching event (by time, arrival, insert id) is always a best continuation."""
    steps, w = q["steps"], q["window_ms"]
    ctes = ["s AS (SELECT *, row_number() OVER (PARTITION BY person ORDER BY t, recv, iid) AS seq FROM ev)",
            "f1 AS (SELECT person, seq AS cur, t AS t1 FROM s WHERE %s AND t >= %d AND t < %d)"
            % (_step("s", steps[0]), q["from_ms"], q["to_ms"])]
    for i, step in enumerate(steps[1:], start=2):
        ctes.append(
            "f%d AS (SELECT f.person, f.t1, min(s.seq) AS cur FROM f%d f JOIN s ON s.person = f.person "
            "AND %s AND s.seq > f.cur AND s.t <= f.t1 + %d GROUP BY f.person, f.t1, f.cur)"
            % (i, i - 1, _step("s", step), w))
    counts = ", ".join("(SELECT count(DISTINCT person) FROM f%d)" % i for i in range(1, len(steps) + 1))
    return list(db.execute("WITH %s SELECT %s" % (", ".join(ctes), counts)).fetchone())


def retention_sql(db, q):
    unit, n = 86_400_000, q["brackets"]
    born, ret = _lit(q["born"]["event"]), _lit(q["returned"]["event"])
    rng = "t >= %d AND t < %d" % (q["from_ms"], q["to_ms"])
    if q["kind"] == "first_time":
        cohorts = ("SELECT person, t AS bt, iid AS biid, lday AS cohort FROM (SELECT *, row_number() OVER "
                   "(PARTITION BY person ORDER BY t, recv, iid) AS k FROM ev WHERE name = %s) WHERE k = 1 AND %s"
                   % (born, rng))
    else:
        cohorts = ("SELECT person, t AS bt, iid AS biid, lday AS cohort FROM (SELECT *, row_number() OVER "
                   "(PARTITION BY person, lday ORDER BY t, recv, iid) AS k FROM ev WHERE name = %s AND %s) WHERE k = 1"
                   % (born, rng))
    rows = db.execute(
        "WITH c AS (%s) SELECT c.person, c.cohort, list(DISTINCT (r.t - c.bt) // %d) FILTER (WHERE r.t IS NOT NULL) "
        "FROM c LEFT JOIN ev r ON r.person = c.person AND r.name = %s AND r.t >= c.bt AND r.iid <> c.biid "
        "AND r.t < c.bt + %d GROUP BY c.person, c.cohort, c.bt" % (cohorts, unit, ret, n * unit)).fetchall()
    out = {}
    for _, cohort, hits in rows:
        people, counts = out.setdefault(cohort, (0, [0] * n))
        hits = set(hits or [])
        for k in range(n):
            if k in hits or (q["unbounded"] and any(h >= k for h in hits)):
                counts[k] += 1
        out[cohort] = (people + 1, counts)
    return out

