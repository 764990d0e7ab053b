"""Identity through the official SDKs: the `mixpanel`, `segment-analytics-python` and
`posthog` clients send identify / alias / merge / track / profile calls to a real Canopy;
the test reads back through Canopy's APIs that events, profiles and merged identities follow
Mixpanel's documented rules (mixpanel-api.md §10-11)."""
import unittest
import uuid

import posthog as posthog_module
import segment.analytics as segment_analytics
from mixpanel import Consumer, Mixpanel

from canopy_server import CanopyServer


def names(rows):
    return sorted(r["event"] for r in rows)


class MixpanelOriginalIdMerge(unittest.TestCase):
    def test_identify_alias_merge_and_profiles(self):
        server = CanopyServer(id_merge="original")
        try:
            u = server.url
            mp = Mixpanel(server.project["token"],
                          consumer=Consumer(events_url=u + "/track", people_url=u + "/engage",
                                            import_url=u + "/import"))
            anon = str(uuid.uuid4())
            mp.track(anon, "App Open", {"screen": "home"})
            # Server-side identify, as the client SDKs send it.
            mp.track("kid-1", "$identify", {"$anon_distinct_id": anon})
            mp.track("kid-1", "Lesson Done", {"lesson": 1})
            # `Mixpanel.alias` always posts to api.mixpanel.com; this is the same request.
            mp.track("kid-1", "$create_alias", {"alias": "kid-1-alias"})
            mp.track("kid-1-alias", "Lesson Done", {"lesson": 2})
            mp.track("web-kid", "Web Visit")
            mp.merge(None, "kid-1", "web-kid", api_secret=server.project["api_secret"])
            # An anonymous id that already belongs to kid-1 cannot be identified again.
            mp.track("kid-2", "$identify", {"$anon_distinct_id": anon})
            mp.people_set("kid-1", {"$name": "Kid One", "plan": "free"})
            mp.people_set("kid-1-alias", {"plan": "family"})
            mp.people_set_once("kid-1", {"plan": "ignored", "first_app": "reader"})
            mp.people_increment("kid-1", {"stories": 3})
            mp.people_increment("kid-1", {"stories": -1})
            mp.people_append("kid-1", {"badges": "owl"})
            mp.people_union("kid-1", {"langs": ["en", "hi"]})
            mp.people_union("kid-1", {"langs": ["hi", "ta"]})
            mp.people_remove("kid-1", {"langs": "en"})
            mp.people_unset("kid-1", ["first_app"])

            rows = server.export()
            by_id = {}
            for r in rows:
                by_id.setdefault(r["properties"]["distinct_id"], []).append(r["event"])
            # Everything but kid-2's identify belongs to one person, shown by its identified id.
            self.assertEqual(sorted(by_id), ["kid-1", "kid-2"])
            self.assertEqual(sorted(by_id["kid-1"]), sorted(
                ["App Open", "$identify", "Lesson Done", "$create_alias", "Lesson Done", "Web Visit", "$merge"]))
            for r in rows:
                for raw in ("$anon_distinct_id", "alias", "$distinct_ids"):
                    self.assertNotIn(raw, r["properties"])
            person = server.person(anon)
            self.assertEqual(person["distinct_id"], "kid-1")
            self.assertEqual(sorted(person["identities"]), sorted([anon, "kid-1", "kid-1-alias", "web-kid"]))
            props = person["profile"]["properties"]
            for k in ("$last_seen",):
                props.pop(k)
            self.assertEqual(props, {"$name": "Kid One", "plan": "family", "stories": 2,
                                     "badges": ["owl"], "langs": ["hi", "ta"]})
            self.assertEqual(len(person["recent_events"]), 7)
        finally:
            server.stop()


class MixpanelSimplifiedIdMerge(unittest.TestCase):
    def test_device_then_user_on_two_devices(self):
        server = CanopyServer()
        try:
            u = server.url
            mp = Mixpanel(server.project["token"], consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            mp.track("", "App Open", {"$device_id": "phone-1"})
            mp.track("", "Login", {"$device_id": "phone-1", "$user_id": "parent-9"})
            mp.track("", "App Open", {"$device_id": "tablet-1"})
            mp.track("", "Login", {"$device_id": "tablet-1", "$user_id": "parent-9"})
            mp.people_set("parent-9", {"kids": 2})
            rows = server.export()
            self.assertEqual({r["properties"]["distinct_id"] for r in rows}, {"parent-9"})
            self.assertTrue(all("$device_id" not in r["properties"] for r in rows))
            person = server.person("$device:tablet-1")
            self.assertEqual(sorted(person["identities"]), ["$device:phone-1", "$device:tablet-1", "parent-9"])
            self.assertEqual(person["profile"]["properties"]["kids"], 2)
        finally:
            server.stop()


class SegmentPythonSdk(unittest.TestCase):
    def test_identify_alias_track_group(self):
        server = CanopyServer()
        try:
            client = segment_analytics.Client(write_key=server.project["token"], host=server.url,
                                              sync_mode=True, max_retries=0)
            anon = str(uuid.uuid4())
            client.track(anonymous_id=anon, event="Story Started", properties={"story": "owl"})
            client.identify(user_id="reader-5", anonymous_id=anon,
                            traits={"email": "parent@example.com", "plan": "family"})
            client.track(user_id="reader-5", event="Story Finished", properties={"minutes": 4})
            client.page(user_id="reader-5", name="Library", properties={"path": "/library"})
            client.alias(previous_id="old-reader-5", user_id="reader-5")
            client.group(user_id="reader-5", group_id="school-3", traits={"name": "Oak School"})
            client.flush()
            rows = server.export()
            self.assertEqual(names(rows), sorted(["Story Started", "$identify", "Story Finished",
                                                  "Viewed Library Page", "$identify"]))
            self.assertEqual({r["properties"]["distinct_id"] for r in rows}, {"reader-5"})
            self.assertTrue(all(r["properties"].get("mp_lib") == "analytics-python" for r in rows))
            person = server.person("$device:" + anon)
            self.assertEqual(person["distinct_id"], "reader-5")
            self.assertIn("old-reader-5", person["identities"])
            props = person["profile"]["properties"]
            self.assertEqual(props["$email"], "parent@example.com")
            self.assertEqual(props["group_id"], ["school-3"])
            group = server.get_json("/api/v1/groups?group_key=group_id&group_id=school-3")
            self.assertEqual(group["properties"]["name"], "Oak School")
        finally:
            server.stop()


class PosthogPythonSdk(unittest.TestCase):
    def test_capture_identify_alias_and_person_properties(self):
        server = CanopyServer(id_merge="original")
        try:
            ph = posthog_module.Posthog(server.project["token"], host=server.url, sync_mode=True,
                                        max_retries=0, enable_local_evaluation=False)
            anon = str(uuid.uuid4())
            ph.capture("Story Started", distinct_id=anon, properties={"story": "fox"})
            ph.capture("$identify", distinct_id="ph-user", properties={"$anon_distinct_id": anon,
                                                                        "$set": {"plan": "family"}})
            ph.capture("Story Finished", distinct_id="ph-user", properties={"minutes": 3},
                       groups={"school": "maple"})
            ph.set(distinct_id="ph-user", properties={"age_band": "6-8"})
            ph.set_once(distinct_id="ph-user", properties={"plan": "ignored", "first": "ios"})
            ph.alias(previous_id="ph-user", distinct_id="ph-user-email")
            ph.group_identify("school", "maple", {"city": "Pune"})
            ph.flush()
            rows = server.export()
            self.assertEqual({r["properties"]["distinct_id"] for r in rows}, {"ph-user"})
            self.assertIn("Story Finished", names(rows))
            finished = [r for r in rows if r["event"] == "Story Finished"][0]
            self.assertEqual(finished["properties"]["school"], "maple")
            self.assertEqual(finished["properties"]["$lib"], "posthog-python")
            person = server.person("ph-user-email")
            self.assertEqual(person["distinct_id"], "ph-user")
            self.assertEqual(sorted(person["identities"]), sorted([anon, "ph-user", "ph-user-email"]))
            props = person["profile"]["properties"]
            self.assertEqual((props["plan"], props["age_band"], props["first"]), ("family", "6-8", "ios"))
            group = server.get_json("/api/v1/groups?group_key=school&group_id=maple")
            self.assertEqual(group["properties"]["city"], "Pune")
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
