"""A private ClickHouse server (Debian's clickhouse-server) for the benchmarks that compare with
it: installed with apt-get when missing, started on its own ports with its data in a temp dir."""
import os
import re
import shutil
import subprocess
import time
import urllib.request


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_clickhouse():
    if shutil.which("clickhouse-server") or os.path.exists("/usr/sbin/clickhouse-server"):
        return
    sh("apt-get", "update")
    sh("apt-get", "install", "-y", "clickhouse-server", "clickhouse-client")


def start_clickhouse(tmp):
    conf = os.path.join(tmp, "ch")
    os.makedirs(conf)
    text = open("/etc/clickhouse-server/config.xml").read()
    data = os.path.join(conf, "data") + "/"
    for tag, value in [("path", data), ("tmp_path", data + "tmp/"), ("user_files_path", data + "user_files/"),
                       ("format_schema_path", data + "format_schemas/"), ("http_port", "18123"),
                       ("tcp_port", "19000"), ("interserver_http_port", "19009"),
                       ("log", conf + "/ch.log"), ("errorlog", conf + "/ch.err.log")]:
        text = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", text, count=1)
    text = text.replace("<listen_host>::1</listen_host>", "")
    open(os.path.join(conf, "config.xml"), "w").write(text)
    shutil.copy("/etc/clickhouse-server/users.xml", conf)
    exe = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
    proc = subprocess.Popen([exe, "--config-file", os.path.join(conf, "config.xml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=conf)
    url = "http://127.0.0.1:18123"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/ping").read()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError("clickhouse did not start; see " + conf)
    return proc, url


def ch_query(url, q):
    req = urllib.request.Request(url + "/", data=q.encode())
    return urllib.request.urlopen(req).read().decode()


