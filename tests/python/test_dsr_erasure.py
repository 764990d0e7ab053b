"""Erasure end to end (issue #6): one person's data sent through the official `mixpanel` SDK
under several identities (an anonymous device, then identified, then a second device), a
GDPR deletion through Canopy's Mixpanel GDPR API v3, and then proof from every side: export,
person view, profiles and identity lookups find nothing, no file under the data dir still
decrypts to any of the person's canary strings, the signed receipt verifies offline, and a
later event from the person is suppressed. Another person's data stays, and the residue scan
finds *their* canaries (so it can find things)."""
import base64
import json
import os
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from mixpanel import Consumer, Mixpanel

from canopy_server import BIN, CanopyServer

CANARIES = ["zebra-anon-7f3a", "zebra-login-91c2", "zebra-tablet-44d0", "zebra-profile-e5b1"]
OTHER_CANARY = "okapi-kept-2b9e"


class GdprDeletion(unittest.TestCase):
    def call(self, server, method, path, body=None, bearer=None):
        """Mixpanel's GDPR API takes the secret as a bearer token; native routes as Basic."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(server.url + path, data=data, method=method)
        if path.startswith("/api/app/"):
            req.add_header("Authorization", "Bearer " + (bearer or server.project["api_secret"]))
        else:
            cred = base64.b64encode((server.project["api_secret"] + ":").encode()).decode()
            req.add_header("Authorization", "Basic " + cred)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def test_mixpanel_gdpr_deletion_erases_every_identity_with_a_receipt(self):
        server = CanopyServer()
        tmp = server.tmp.name
        try:
            u = server.url
            mp = Mixpanel(server.project["token"],
                          consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            # Anonymous on a tablet, then logs in, then a second device — and someone else.
            mp.track("$device:tablet-A", "App Open", {"$device_id": "tablet-A", "note": CANARIES[0]})
            mp.track("kid-7", "Login", {"$device_id": "tablet-A", "$user_id": "kid-7", "note": CANARIES[1]})
            mp.people_set("kid-7", {"nickname": CANARIES[3]})
            mp.track("other-kid", "App Open", {"$device_id": "tablet-Z", "$user_id": "other-kid",
                                               "note": OTHER_CANARY})
            # A restart flushes everything so far into encrypted segments…
            server.restart()
            u = server.url
            mp = Mixpanel(server.project["token"],
                          consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            # …and this one is still only in the write-ahead log when the deletion runs.
            mp.track("kid-7", "Play", {"$device_id": "phone-B", "$user_id": "kid-7", "note": CANARIES[2]})
            rows = server.export()
            self.assertEqual(len(rows), 4)
            for c in CANARIES[:3]:
                self.assertTrue(any(r["properties"].get("note") == c for r in rows), c)
            self.assertEqual(server.person("$device:phone-B")["distinct_id"], "kid-7")

            token = "?token=" + urllib.parse.quote(server.project["token"])
            # Refused without the API secret, and for a bad body.
            status, _ = self.call(server, "POST", "/api/app/data-deletions/v3.0/" + token,
                                  {"distinct_ids": ["kid-7"]}, bearer="wrong")
            self.assertEqual(status, 401)
            status, body = self.call(server, "POST", "/api/app/data-deletions/v3.0/" + token,
                                     {"distinct_ids": "kid-7"})
            self.assertEqual(status, 400, body)

            # The deletion names only the anonymous device id.
            status, created = self.call(server, "POST", "/api/app/data-deletions/v3.0/" + token,
                                        {"distinct_ids": ["$device:tablet-A"], "compliance_type": "GDPR"})
            self.assertEqual(status, 201, created)
            self.assertEqual(created["status"], "ok")
            task = created["results"]["task_id"]
            self.assertEqual(created["results"]["tracking_id"], task)
            deadline = time.time() + 30
            while True:
                status, st = self.call(server, "GET", "/api/app/data-deletions/v3.0/%s%s" % (task, token))
                self.assertEqual(status, 200, st)
                if st["results"]["status"] in ("SUCCESS", "FAILURE") or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(st["results"]["status"], "SUCCESS", st)
            self.assertEqual(st["results"]["distinct_ids"], [], "ids are not kept once done")
            self.assertEqual(st["results"]["compliance_type"], "GDPR")
            # A finished deletion can no longer be cancelled.
            status, _ = self.call(server, "DELETE", "/api/app/data-deletions/v3.0/%s%s" % (task, token))
            self.assertEqual(status, 405)

            # Export, person view, profiles, identity: nothing of kid-7.
            rows = server.export()
            self.assertEqual([r["properties"]["distinct_id"] for r in rows], ["other-kid"])
            for raw in ("kid-7", "$device:tablet-A", "$device:phone-B"):
                status, _ = self.call(server, "GET", "/api/v1/persons?" + urllib.parse.urlencode({"distinct_id": raw}))
                self.assertEqual(status, 404, raw)
            self.assertFalse([p for p in server.profile_updates() if CANARIES[3] in json.dumps(p)])

            # The receipt verifies offline against the published key; a changed copy does not.
            status, receipt = self.call(server, "GET", "/api/v1/dsr/requests/%s/receipt" % task)
            self.assertEqual(status, 200, receipt)
            self.assertEqual(receipt["rows_removed"], 4)
            self.assertTrue(receipt["verification"]["passed"])
            for c in CANARIES + ["kid-7", "tablet-A"]:
                self.assertNotIn(c, json.dumps(receipt))
            with urllib.request.urlopen(u + "/.well-known/canopy-receipt-keys.json") as r:
                keys = json.loads(r.read().decode())
            receipt_path, keys_path = os.path.join(tmp, "receipt.json"), os.path.join(tmp, "keys.json")
            with open(receipt_path, "w") as f:
                json.dump(receipt, f)
            with open(keys_path, "w") as f:
                json.dump(keys, f)
            ok = subprocess.run([BIN, "dsr", "verify-receipt", receipt_path, "--keys", keys_path],
                                capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            receipt["rows_removed"] = 3
            with open(receipt_path, "w") as f:
                json.dump(receipt, f)
            bad = subprocess.run([BIN, "dsr", "verify-receipt", receipt_path, "--keys", keys_path],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0)

            # Later events from any of the person's ids are suppressed, even after a restart.
            mp.track("kid-7", "Play Again", {"$device_id": "phone-B", "$user_id": "kid-7", "note": "late"})
            mp.track("$device:tablet-A", "App Open", {"$device_id": "tablet-A"})
            server.restart()
            self.assertEqual([r["properties"]["distinct_id"] for r in server.export()], ["other-kid"])

            # Offline: no file under the data dir holds or decrypts to the person's canaries…
            server.proc.terminate()
            server.proc.wait(timeout=60)
            scan = subprocess.run([BIN, "dsr", "find-residue", "--data-dir", server.data] + CANARIES
                                  + ["kid-7", "tablet-A", "phone-B"], capture_output=True, text=True)
            self.assertEqual(scan.returncode, 0, scan.stdout + scan.stderr)
            self.assertGreater(json.loads(scan.stdout)["segments_decrypted"], 0)
            # …while the other person's canary is found (the scan does see inside segments).
            found = subprocess.run([BIN, "dsr", "find-residue", "--data-dir", server.data, OTHER_CANARY],
                                   capture_output=True, text=True)
            self.assertNotEqual(found.returncode, 0)
            self.assertIn("segment", found.stdout)
            # And the server's own (debug-level) log never named the person.
            with open(server.log) as f:
                log = f.read()
            for c in CANARIES + ["kid-7", "tablet-A"]:
                self.assertNotIn(c, log)
        finally:
            if server.proc.poll() is None:
                server.proc.terminate()
                server.proc.wait(timeout=60)
            server.tmp.cleanup()


class GdprRetrieval(unittest.TestCase):
    """Access / portability through Mixpanel's data-retrievals API: the link downloads a zip of
    everything held about the person — all their identities — as JSON and CSV with a README."""

    def test_retrieval_bundles_every_identity_and_nobody_else(self):
        server = CanopyServer()
        try:
            u = server.url
            mp = Mixpanel(server.project["token"],
                          consumer=Consumer(events_url=u + "/track", people_url=u + "/engage"))
            mp.track("$device:tab-1", "App Open", {"$device_id": "tab-1", "note": "a"})
            mp.track("kid-9", "Login", {"$device_id": "tab-1", "$user_id": "kid-9", "note": "b, with a comma"})
            mp.track("kid-9", "Play", {"$device_id": "phone-2", "$user_id": "kid-9", "note": "c"})
            mp.people_set("kid-9", {"nickname": "Nine"})
            mp.track("someone-else", "App Open", {"note": "not theirs"})
            token = "?token=" + urllib.parse.quote(server.project["token"])
            helper = GdprDeletion()
            status, created = helper.call(server, "POST", "/api/app/data-retrievals/v3.0/" + token,
                                          {"distinct_ids": ["$device:phone-2"]})
            self.assertEqual(status, 201, created)
            task = created["results"]["task_id"]
            deadline = time.time() + 30
            while True:
                status, st = helper.call(server, "GET", "/api/app/data-retrievals/v3.0/%s%s" % (task, token))
                if st["results"]["status"] == "SUCCESS" or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(st["results"]["status"], "SUCCESS", st)
            link = st["results"]["result"]
            self.assertEqual(link, st["results"]["results"])
            self.assertIn("/dsr/downloads/", link)
            # The link works without credentials; a changed token does not.
            with urllib.request.urlopen(link) as r:
                self.assertEqual(r.headers["Content-Type"], "application/zip")
                data = r.read()
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(link[:-3] + "xyz")
            self.assertEqual(e.exception.code, 404)

            import csv
            import io
            import zipfile
            z = zipfile.ZipFile(io.BytesIO(data))
            self.assertEqual(sorted(z.namelist()), sorted(
                ["README.txt"] + ["%s.%s" % (f, x) for f in ("events", "profile", "identities", "consent", "destinations")
                                  for x in ("json", "csv")]))
            events = json.loads(z.read("events.json"))
            self.assertEqual([e["event"] for e in events], ["App Open", "Login", "Play"])
            self.assertEqual({e["properties"]["distinct_id"] for e in events}, {"kid-9"})
            rows = list(csv.DictReader(io.StringIO(z.read("events.csv").decode())))
            self.assertEqual([r["event"] for r in rows], ["App Open", "Login", "Play"])
            self.assertEqual(json.loads(rows[1]["properties"])["note"], "b, with a comma")
            ids = {i["id"] for i in json.loads(z.read("identities.json"))}
            self.assertEqual(ids, {"kid-9", "$device:tab-1", "$device:phone-2"})
            self.assertEqual(json.loads(z.read("profile.json"))["properties"]["nickname"], "Nine")
            self.assertEqual(json.loads(z.read("destinations.json")), [])
            readme = z.read("README.txt").decode()
            for f in ("events.csv", "profile.json", "identities.csv", "consent.json", "destinations.csv"):
                self.assertIn(f.split(".")[0], readme)
            self.assertNotIn("someone-else", data.decode("latin-1"))

            # The same bundle from the command line: `canopy dsr export` files an access
            # request by another of the person's ids, follows it and streams the zip to a file.
            out = os.path.join(server.data, "..", "kid-9.zip")
            cli = subprocess.run([BIN, "dsr", "export", "--project", str(server.project["id"]),
                                  "--data-dir", server.data, "--out", out, "kid-9"],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(cli.returncode, 0, cli.stderr)
            self.assertIn("Exported", cli.stdout)
            z2 = zipfile.ZipFile(out)
            self.assertEqual(sorted(z2.namelist()), sorted(z.namelist()))
            self.assertEqual([e["event"] for e in json.loads(z2.read("events.json"))],
                             ["App Open", "Login", "Play"])
            self.assertFalse(os.path.exists(out[:-len(".zip")] + ".part"))
            # Nobody behind the id: the same files, empty, and a README that says so.
            cli = subprocess.run([BIN, "dsr", "export", "--project", str(server.project["id"]),
                                  "--data-dir", server.data, "--out", out + "2", "nobody-here"],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(cli.returncode, 0, cli.stderr)
            z3 = zipfile.ZipFile(out + "2")
            self.assertEqual(sorted(z3.namelist()), sorted(z.namelist()))
            self.assertEqual(json.loads(z3.read("events.json")), [])
            self.assertEqual(json.loads(z3.read("identities.json")), [])
            self.assertIn("0 identity cluster(s), 0 event(s)", z3.read("README.txt").decode())

            # And `canopy dsr erase` by the same id: it waits for the receipt and saves it.
            receipt_path = os.path.join(server.data, "..", "kid-9-receipt.json")
            cli = subprocess.run([BIN, "dsr", "erase", "--project", str(server.project["id"]),
                                  "--data-dir", server.data, "--receipt-out", receipt_path, "kid-9"],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(cli.returncode, 0, cli.stderr)
            receipt = json.load(open(receipt_path))
            self.assertTrue(receipt["verification"]["passed"])
            self.assertEqual(receipt["rows_removed"], 4, receipt)  # 3 events, 1 profile update
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
