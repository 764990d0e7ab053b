"""The privacy policy, black-box, through the official `mixpanel` SDK: a child of unknown age
in a `mixed` project sends personal data in every form — property names and values, nested
objects, lists, URLs, an email as distinct_id, `$email` on the profile — and none of it
survives anywhere Canopy keeps data; the lint report counts each action without a value.
An adult's same events keep what the adult policy allows."""
import os
import unittest
import urllib.error

from mixpanel import Consumer, Mixpanel

from canopy_server import CanopyServer

CANARIES = ["canary.kid@example.com", "+1 415 555 0142", "4111 1111 1111 1111", "203.0.113.77",
            "37.7749, -122.4194", "token=canarysecret", "Canary Kidname"]


class ChildPolicy(unittest.TestCase):
    def test_child_pii_is_removed_before_storage_and_counted(self):
        server = CanopyServer(geoip=True)
        try:
            current = server.get_json("/api/v1/settings")["settings"]
            current["privacy"] = {"audience": "mixed", "schema": {"level": "behavioral", "story": "behavioral"}}
            server.put_json("/api/v1/settings", current)
            u = server.url
            mp = Mixpanel(server.project["token"], consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            mp.track("kid-7", "Story Read", {
                "level": 3,
                "story": ["owl", {"shared_with": CANARIES[0]}],
                "note": "call " + CANARIES[1],
                "payment": CANARIES[2],
                "client_ip": CANARIES[3],
                "$latitude": 37.7749, "where": CANARIES[4],
                "$current_url": "https://app.example/story?" + CANARIES[5],
                CANARIES[0]: "as a property name",
                "first_name": CANARIES[6],
                "$idfa": "AEBE52E7-03EE-455A-B3C4-E57283966239",
                "ip": CANARIES[3],  # Mixpanel's explicit IP: geolocated, never stored
            })
            mp.track(CANARIES[0], "Login")  # an email as distinct_id
            mp.people_set("kid-7", {"$email": CANARIES[0], "$name": CANARIES[6], "$os": "iOS"})
            # An adult (age band 18+) keeps the adult policy's data.
            mp.track("parent-7", "Story Read", {"$age_band": "18+", "level": 3, "note": "fine"})

            rows = server.export()
            text = repr(rows)
            for c in CANARIES:
                self.assertNotIn(c.split("=")[-1], text, c)
            kid = [r for r in rows if r["properties"]["distinct_id"] == "kid-7"]
            self.assertEqual(len(kid), 1)
            props = kid[0]["properties"]
            self.assertEqual((props["$age_tier"], props["level"]), ("child_us_u13", 3))
            # The IP said San Francisco: a child keeps the country, never the region, city or IP.
            self.assertEqual((props["mp_country_code"], props["$jurisdiction"]), ("US", "US-CA"))
            for k in ["$region", "$city", "$ip"]:
                self.assertNotIn(k, props)
            self.assertEqual(props.get("story"), None)  # nested email: the property goes
            adult = [r for r in rows if r["properties"]["distinct_id"] == "parent-7"][0]["properties"]
            self.assertEqual((adult["$age_tier"], adult["note"]), ("adult", "fine"))
            # The email never became an identity, the profile kept only technical properties.
            with self.assertRaises(urllib.error.HTTPError) as e:
                server.person(CANARIES[0])
            self.assertEqual(e.exception.code, 404)
            self.assertEqual(server.person("kid-7")["profile"]["properties"].get("$os"), "iOS")
            self.assertNotIn(CANARIES[0], repr(server.person("kid-7")))
            # Nothing under the data dir holds a canary in the clear.
            for root, _, files in os.walk(server.data):
                for f in files:
                    data = open(os.path.join(root, f), "rb").read()
                    for c in CANARIES:
                        self.assertNotIn(c.encode(), data, f)
            lint = server.get_json("/api/v1/privacy/lint")["actions"]
            rules = {a["rule"] for a in lint}
            # Unlisted properties ("payment", "client_ip", "where") go as unknown before any
            # detector needs to look at them.
            for rule in ["class:name", "class:ad_id", "class:precise_geo", "class:free_text", "pii:email",
                         "pii:url_secret", "unknown_property", "contact_identifier", "technical_profile_only"]:
                self.assertIn(rule, rules)
            self.assertNotIn("canary", repr(lint).lower())
            # The server's own log (at debug level) holds none of it either.
            log = open(server.log, "rb").read()
            for c in CANARIES:
                self.assertNotIn(c.encode(), log, c)
            # The lint report is durable.
            server.restart()
            self.assertEqual(server.get_json("/api/v1/privacy/lint")["actions"], lint)
        finally:
            server.stop()


class IndianMinors(unittest.TestCase):
    def test_indian_minors_are_counted_under_a_daily_pseudonym_never_tracked(self):
        server = CanopyServer(geoip=True)
        try:
            current = server.get_json("/api/v1/settings")["settings"]
            current["privacy"] = {"audience": "mixed", "schema": {"level": "behavioral"}}
            server.put_json("/api/v1/settings", current)
            u = server.url
            mp = Mixpanel(server.project["token"], consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            bengaluru = "198.51.100.9"
            mp.track("kid-in-1", "Story Read", {"$age_band": "13-15", "level": 1, "ip": bengaluru})
            mp.track("kid-in-1", "Story Read", {"level": 2, "ip": bengaluru})
            mp.track("kid-in-2", "Story Read", {"level": 1, "ip": bengaluru})  # unknown age: a minor too
            mp.track("parent-in", "Story Read", {"$age_band": "18+", "level": 1, "ip": bengaluru})
            mp.people_set("kid-in-1", {"$os": "Android"})
            rows = server.export()
            minors = [r["properties"] for r in rows if r["properties"]["$age_tier"] == "minor_in_u18"]
            # The message carries every exported row (pseudonymous here). It once showed 1 minor
            # row instead of 3 in about one run in ten: the contact-identifier check took the
            # day's pseudonym for a phone number when its hex held a long run of digits
            # (fixed; regression test in canopy-policy's tests_facts.rs).
            self.assertEqual(len(minors), 3, rows)
            ids = {m["distinct_id"] for m in minors}
            self.assertEqual(len(ids), 2, "daily uniques still count two people")
            self.assertTrue(all(i.startswith("$agg:") for i in ids))
            self.assertNotIn("kid-in", repr(rows))
            parent = [r["properties"] for r in rows if r["properties"]["distinct_id"] == "parent-in"]
            self.assertEqual(parent[0]["$jurisdiction"], "IN-KA")
            for who in ["kid-in-1", "kid-in-2"]:
                with self.assertRaises(urllib.error.HTTPError) as e:
                    server.person(who)
                self.assertEqual(e.exception.code, 404, who)
        finally:
            server.stop()


class Suppression(unittest.TestCase):
    def test_suppressed_ids_are_dropped_before_any_write_until_removed(self):
        server = CanopyServer()
        try:
            u = server.url
            mp = Mixpanel(server.project["token"], consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            self.assertEqual(server.put_json("/api/v1/suppressions", {"distinct_ids": ["gone-kid"]}, "POST")["changed"], 1)
            listed = server.get_json("/api/v1/suppressions")
            self.assertEqual(listed["count"], 1)
            self.assertNotIn("gone-kid", repr(listed))
            mp.track("gone-kid", "Play", {"marker": "suppressed-canary"})
            mp.people_set("gone-kid", {"plan": "x"})
            mp.track("other-kid", "Play")
            self.assertEqual([r["properties"]["distinct_id"] for r in server.export()], ["other-kid"])
            with self.assertRaises(urllib.error.HTTPError):
                server.person("gone-kid")
            for root, _, files in os.walk(server.data):
                for f in files:
                    self.assertNotIn(b"gone-kid", open(os.path.join(root, f), "rb").read(), f)
            lint = server.get_json("/api/v1/privacy/lint")["actions"]
            self.assertEqual(sum(a["count"] for a in lint if a["rule"] == "suppressed"), 2)
            server.put_json("/api/v1/suppressions", {"distinct_ids": ["gone-kid"]}, "DELETE")
            mp.track("gone-kid", "Back")
            self.assertIn("gone-kid", [r["properties"]["distinct_id"] for r in server.export()])
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
