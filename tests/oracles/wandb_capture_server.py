"""A loopback stand-in for a W&B server, for tests (Python standard library only).

It answers what `wandb sync` (wandb-core 0.31.0) and ezpz-tracker's online mode send --
GraphQL `UpsertBucket`, `ServerFeaturesQuery`, `CreateRunFiles`, file uploads (`PUT`) and
`file_stream` -- and rebuilds each run the way the real server would see it: history lines
placed at their line offsets, the last summary line, the merged config, uploaded files, and
whether the run was completed with which exit code.

Usage:
    python wandb_capture_server.py --port-file P --state S [--fail KIND:ACTION:COUNT]...

The chosen port is written to P; after every request the whole state is written to S
(JSON, atomically). `--fail graphql:503:2` makes the first two GraphQL requests answer 503;
KIND is graphql, file_stream, upload or any; ACTION is an HTTP status (429 adds
`Retry-After: 1`), `drop` (close the connection without an answer), `hang` (never answer:
hold the connection until the client gives up) or `absurd` (503 with `Retry-After: 1e20`).
"""

import argparse
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"requests": [], "runs": {}}
FAILS = []  # [kind, action, remaining]
ARGS = None


def run_entry(name):
    return STATE["runs"].setdefault(
        name,
        {"history": [], "summary": None, "config": {}, "complete": False, "exitcode": None,
         "uploaded": [], "files": {}, "upserts": 0, "entity": None, "project": None,
         "display_name": None, "tags": None, "notes": None, "group": None, "job_type": None},
    )


def save():
    tmp = ARGS.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, ARGS.state)


def take_failure(kind):
    for f in FAILS:
        if f[2] > 0 and f[0] in (kind, "any"):
            f[2] -= 1
            return f[1]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        raw = self.body()
        path = self.path
        kind = ("graphql" if path.startswith("/graphql") else
                "file_stream" if path.endswith("/file_stream") else
                "upload" if path.startswith("/upload/") else "other")
        with LOCK:
            entry = {"method": self.command, "path": path, "kind": kind,
                     "auth": self.headers.get("Authorization", "")}
            STATE["requests"].append(entry)
            action = take_failure(kind) if kind != "other" else None
            entry["injected"] = action
            save()
        if action == "drop":
            self.close_connection = True
            return
        if action == "hang":
            self.close_connection = True
            self.connection.settimeout(600)
            try:
                self.connection.recv(1)  # returns when the client closes
            except OSError:
                pass
            return
        if action == "absurd":
            return self.reply(503, {"error": "injected failure"}, [("Retry-After", "1e20")])
        if action is not None:
            status = int(action)
            headers = [("Retry-After", "1")] if status == 429 else []
            return self.reply(status, {"error": "injected failure"}, headers)
        with LOCK:
            result = self.dispatch(kind, path, raw, entry)
            save()
        self.reply(200, result)

    do_POST = handle_any
    do_PUT = handle_any
    do_GET = handle_any

    def dispatch(self, kind, path, raw, entry):
        if kind == "graphql":
            req = json.loads(raw or b"{}")
            query = req.get("query") or ""
            var = req.get("variables") or {}
            op = req.get("operationName") or query.split("(")[0].split("{")[0].split()[-1]
            entry["op"] = op
            if "upsertBucket" in query:
                run = run_entry(var.get("name") or "unnamed")
                run["upserts"] += 1
                run["entity"] = var.get("entity") or run["entity"] or "capture-entity"
                run["project"] = var.get("project") or run["project"] or "uncategorized"
                run["display_name"] = var.get("displayName") or run["display_name"]
                if var.get("tags") is not None:
                    run["tags"] = var["tags"]
                for field, key in (("notes", "notes"), ("groupName", "group"),
                                   ("jobType", "job_type")):
                    run[key] = var.get(field) or run[key]
                if var.get("config"):
                    run["config"].update(json.loads(var["config"]))
                return {"data": {"upsertBucket": {"inserted": run["upserts"] == 1, "bucket": {
                    "id": "UnVuOjE=", "name": var.get("name"),
                    "displayName": run["display_name"], "description": None, "config": None,
                    "sweepName": None, "historyLineCount": len(run["history"]),
                    "project": {"id": "UHJvamVjdDox", "name": run["project"],
                                "entity": {"id": "RW50aXR5OjE=", "name": run["entity"]}}}}}}
            if "createRunFiles" in query:
                name = var.get("run")
                port = self.server.server_address[1]
                files = [{"name": f, "uploadUrl": f"http://127.0.0.1:{port}/upload/{name}/{f}"}
                         for f in var.get("files") or []]
                return {"data": {"createRunFiles": {"runID": name, "uploadHeaders": [],
                                                    "files": files}}}
            if "serverInfo" in query:
                return {"data": {"serverInfo": {"features": []}}}
            return {"data": {}}
        if kind == "upload":
            _, _, name, fname = path.split("/", 3)
            run_entry(name)["files"][fname] = {
                "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
            return {}
        if kind == "file_stream":
            parts = path.strip("/").split("/")
            run = run_entry(parts[3])
            req = json.loads(raw or b"{}")
            files = req.get("files") or {}
            hist = files.get("wandb-history.jsonl")
            if hist:
                lines = run["history"]
                for i, line in enumerate(hist.get("content") or []):
                    at = hist.get("offset", 0) + i
                    while len(lines) <= at:
                        lines.append(None)
                    lines[at] = line
            summ = files.get("wandb-summary.json")
            if summ and summ.get("content"):
                run["summary"] = summ["content"][-1]
            run["uploaded"].extend(req.get("uploaded") or [])
            if req.get("complete"):
                run["complete"] = True
                run["exitcode"] = req.get("exitcode")
            return {"exitcode": None, "limits": {}}
        return {}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--fail", action="append", default=[])
    ARGS = p.parse_args()
    for spec in ARGS.fail:
        kind, action, count = spec.split(":")
        FAILS.append([kind, action, int(count)])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    save()
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
