"""Starts the real `canopy` binary for SDK tests."""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

BIN = os.environ.get("CANOPY_BIN", "target/debug/canopy")


class CanopyServer:
    def __init__(self, id_merge="simplified"):
        self.tmp = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.tmp.name, "data")
        os.makedirs(self.data)
        out = subprocess.run([BIN, "project", "create", "sdk-test", "--json", "--data-dir", self.data,
                              "--id-merge", id_merge],
                             check=True, capture_output=True, text=True)
        self.project = json.loads(out.stdout)
        self.proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                with open(os.path.join(self.data, "server.json")) as f:
                    info = json.load(f)
                if info["pid"] == self.proc.pid:
                    self.url = info["url"]
                    break
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                raise RuntimeError("canopy did not start")
            time.sleep(0.05)

    def get(self, path):
        req = urllib.request.Request(self.url + path)
        import base64
        cred = base64.b64encode((self.project["api_secret"] + ":").encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        with urllib.request.urlopen(req) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]

    def get_json(self, path):
        req = urllib.request.Request(self.url + path)
        import base64
        cred = base64.b64encode((self.project["api_secret"] + ":").encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read().decode())

    def put_json(self, path, body, method="PUT"):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method=method)
        import base64
        cred = base64.b64encode((self.project["api_secret"] + ":").encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read().decode())

    def person(self, distinct_id):
        """Canopy's person view: identities, profile, recent events."""
        import urllib.parse
        return self.get_json("/api/v1/persons?" + urllib.parse.urlencode({"distinct_id": distinct_id}))

    def wait_for(self, predicate, timeout=20):
        """Client SDKs send in the background: poll the export until `predicate` holds."""
        deadline = time.time() + timeout
        while True:
            rows = self.export()
            if predicate(rows) or time.time() > deadline:
                return rows
            time.sleep(0.1)

    def export(self):
        return self.get("/api/2.0/export?from_date=1971-01-01&to_date=2100-01-01")

    def profile_updates(self):
        return self.get("/api/v1/profile-updates")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.tmp.cleanup()
