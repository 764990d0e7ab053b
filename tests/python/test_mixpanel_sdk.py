"""The official `mixpanel` Python SDK, pointed at Canopy, sends track, people_set, import and
group_set; everything is read back through Canopy's APIs and compared field by field."""
import time
import unittest

import mixpanel
from mixpanel import Consumer, Mixpanel

from canopy_server import CanopyServer

# Server-derived: processing time, and the privacy policy's age tier and jurisdiction stamps.
SERVER_DERIVED = {"mp_processing_time_ms", "$age_tier", "$jurisdiction"}


class MixpanelPythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = CanopyServer()
        u = cls.server.url
        cls.consumer = Consumer(events_url=u + "/track", people_url=u + "/engage",
                                groups_url=u + "/groups", import_url=u + "/import")
        cls.mp = Mixpanel(cls.server.project["token"], consumer=cls.consumer)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_track_import_people_and_groups_round_trip(self):
        mp = self.mp
        sent = {}
        props = {"screen": "Stories", "level": 7, "ratio": 0.25, "premium": False,
                 "tags": ["bedtime", "animals"], "nested": {"a": 1, "b": "x"}, "emoji": "🦒 giraffe"}
        mp.track("kid-42", "Story Started", props)
        mp.track("kid-42", "Story Finished", {"minutes": 12})
        hist = int(time.time()) - 30 * 86400
        mp.import_data(self.server.project["token"], "kid-43", "Old Event", hist,
                       {"$insert_id": "hist-1", "source": "backfill"},
                       api_secret=self.server.project["api_secret"])
        mp.people_set("kid-42", {"$name": "Test Kid", "plan": "family"})
        mp.people_set_once("kid-42", {"first_seen": "2026-11-01"})
        mp.people_increment("kid-42", {"stories_read": 2})
        mp.people_union("kid-42", {"interests": ["space"]})
        mp.people_unset("kid-42", ["old_prop"])
        mp.group_set("school_id", "school-7", {"name": "Hill School", "size": 300})
        mp.group_union("school_id", "school-7", {"grades": ["K", "1"]})

        rows = [r for r in self.server.export() if r["properties"]["distinct_id"] in ("kid-42", "kid-43")]
        by_event = {r["event"]: r for r in rows}
        self.assertEqual(len(rows), 3)
        self.assertEqual(sorted(by_event), ["Old Event", "Story Finished", "Story Started"])

        started = by_event["Story Started"]["properties"]
        self.assertEqual(started["distinct_id"], "kid-42")
        self.assertEqual(started["mp_lib"], "python")
        self.assertEqual(started["$lib_version"], mixpanel.__version__)
        self.assertEqual(len(started["$insert_id"]), 32)
        self.assertAlmostEqual(started["time"], time.time(), delta=120)
        for k, v in props.items():
            self.assertEqual(started[k], v, k)
        expected_keys = set(props) | {"distinct_id", "time", "$insert_id", "mp_lib", "$lib_version"} | SERVER_DERIVED
        self.assertEqual(set(started), expected_keys)

        old = by_event["Old Event"]["properties"]
        self.assertEqual(old["time"], hist)
        self.assertEqual(old["distinct_id"], "kid-43")
        self.assertEqual(old["$insert_id"], "hist-1")
        self.assertEqual(old["source"], "backfill")
        self.assertIs(old["$import"], True)

        updates = self.server.profile_updates()
        user = [u for u in updates if u.get("$distinct_id") == "kid-42"]
        ops = {op: u[op] for u in user for op in u if op.startswith("$") and op not in ("$distinct_id", "$time")}
        self.assertEqual(ops["$set"], {"$name": "Test Kid", "plan": "family"})
        self.assertEqual(ops["$set_once"], {"first_seen": "2026-11-01"})
        self.assertEqual(ops["$add"], {"stories_read": 2})
        self.assertEqual(ops["$union"], {"interests": ["space"]})
        self.assertEqual(ops["$unset"], ["old_prop"])
        group = [u for u in updates if u.get("$group_key") == "school_id"]
        self.assertEqual(len(group), 2)
        self.assertTrue(all(g["$group_id"] == "school-7" for g in group))
        gops = {op: g[op] for g in group for op in ("$set", "$union") if op in g}
        self.assertEqual(gops["$set"], {"name": "Hill School", "size": 300})
        self.assertEqual(gops["$union"], {"grades": ["K", "1"]})

    def test_service_account_import(self):
        creds = mixpanel.ServiceAccountCredentials("svc-canopy", self.server.project["api_secret"],
                                                   str(self.server.project["id"]))
        u = self.server.url
        consumer = Consumer(events_url=u + "/track", import_url=u + "/import", credentials=creds)
        mp = Mixpanel(self.server.project["token"], consumer=consumer, credentials=creds)
        hist = int(time.time()) - 10 * 86400
        mp.import_data(self.server.project["token"], "kid-sa", "Service Account Event", hist, {"$insert_id": "sa-1"})
        rows = [r for r in self.server.export() if r["event"] == "Service Account Event"]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["properties"]["distinct_id"], "kid-sa")
        wrong = mixpanel.ServiceAccountCredentials("svc", self.server.project["api_secret"], "999")
        bad = Mixpanel(self.server.project["token"], consumer=Consumer(import_url=u + "/import", credentials=wrong), credentials=wrong)
        with self.assertRaises(mixpanel.MixpanelException):
            bad.import_data(self.server.project["token"], "kid-sa", "Nope", hist, {"$insert_id": "sa-2"})

    def test_bad_token_is_refused_the_way_the_sdk_expects(self):
        bad = Mixpanel("not-a-token", consumer=self.consumer)
        with self.assertRaises(mixpanel.MixpanelException) as ctx:
            bad.track("kid-1", "Nope")
        self.assertIn("unknown project token", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
