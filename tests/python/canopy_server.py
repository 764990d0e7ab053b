"""Starts the real `canopy` binary for SDK tests."""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

BIN = os.environ.get("CANOPY_BIN", "target/debug/canopy")


GEOIP_WRITER = os.path.join(os.path.dirname(__file__), "..", "geoip", "make-test-mmdb.pl")


class CanopyServer:
    def __init__(self, id_merge="simplified", geoip=False):
        """`geoip`: serve with a test GeoIP database (TEST-NET ranges: 203.0.113.0/24 is
        San Francisco, 198.51.100.0/24 Bengaluru). The server's log goes to `self.log`."""
        self.tmp = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.tmp.name, "data")
        self.log = os.path.join(self.tmp.name, "server.log")
        os.makedirs(self.data)
        self.args = []
        if geoip:
            mmdb = os.path.join(self.tmp.name, "geo.mmdb")
            subprocess.run(["perl", GEOIP_WRITER, mmdb], check=True)
            config = os.path.join(self.tmp.name, "canopy.toml")
            with open(config, "w") as f:
                f.write("[privacy]\ngeoip_db = %s\n" % json.dumps(mmdb))
            self.args = ["--config", config]
        out = subprocess.run([BIN, "project", "create", "sdk-test", "--json", "--data-dir", self.data,
                              "--id-merge", id_merge],
                             check=True, capture_output=True, text=True)
        self.project = json.loads(out.stdout)
        self.start()

    def start(self):
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data] + self.args,
                                     stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, RUST_LOG="debug"))
        log.close()
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

    def restart(self):
        """Stops the server cleanly and starts it again on the same data dir."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.tmp.cleanup()
