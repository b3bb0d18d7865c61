#!/usr/bin/env python3
"""Browser test of the web dashboard against a live cluster (run by .ci/dashboard.sh).

Headless Debian chromium driven by selenium loads every page through a follower and then
through the leader (the dashboard must work through any replica), and asserts on the DOM:
the cluster page shows every member and one leader, the workers page lists the workers, a
task submitted through the form runs to `succeeded`, a long task is cancelled from its
detail page, a schedule created through the API is paused, resumed and triggered with the
buttons. A workflow (a diamond with a 3-shard node, a failure handler and an `any` join)
submitted through the API is drawn as SVG with the right boxes and edges, its states go live
to `succeeded`, and clicking a node lists its tasks and results; a 200-node workflow with a
1000-shard node renders and is cancelled with the button. The last pass also drains and
removes a worker. A screenshot of each page is kept in the output directory.

With TASKRAFT_TOKEN (or TASKRAFT_TOKEN_FILE) set, the first pass logs in through the token
prompt and the second through `#token=` in the URL, which must then vanish from the URL.
A third pass goes through a small proxy that demands a token of its own the way the server's
auth does (401 JSON on /v1/*, static files open; it sends the real token, if any, upstream),
so the prompt is exercised with auth on or off: a wrong token is refused, the right one is
kept and sent after a reload, "forget" drops it; it refuses a workflow cancel with a 403,
which the workflow page must show inline.

Usage: test_dashboard.py --base http://127.0.0.1:7101 [--out DIR] [--workers 2]
Exits non-zero when a check fails; the last line is "N passed, N failed".
"""

import argparse
import http.server
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30
# A gated task waits for its file at most this many tenths of a second, then fails.
GATE_TICKS = 600
# Text a task name carries to prove API strings are rendered as text, never as markup.
HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold</b>'


def read_token():
    token = os.environ.get("TASKRAFT_TOKEN", "").strip()
    path = os.environ.get("TASKRAFT_TOKEN_FILE", "").strip()
    if not token and path:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    return token


class Api:
    """Plain JSON calls to one replica, for setup and for checks behind the UI's back."""

    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


class AuthGate:
    """A bearer-token check in front of one replica, standing in for the server's own."""

    OPEN = ("/", "/health", "/ready")
    FORBIDDEN = "role reader may not drain workers"
    FORBIDDEN_CANCEL = "role submitter may not cancel workflows"

    def __init__(self, upstream, secret, upstream_token):
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, headers, body):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def proxy(self):
                path = self.path
                if not (path in gate.OPEN or path.startswith("/ui/")) and \
                        self.headers.get("Authorization") != "Bearer " + secret:
                    gate.refused += 1
                    body = json.dumps({"error": {"code": "unauthorized", "message": "a valid bearer token is required"}})
                    self.answer(401, [("Content-Type", "application/json")], body.encode())
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                if self.command == "POST" and path.startswith("/v1/workers/") and path.endswith("/drain"):
                    # As for a token whose role may not administer workers.
                    body = json.dumps({"error": {"code": "forbidden", "message": gate.FORBIDDEN}})
                    self.answer(403, [("Content-Type", "application/json")], body.encode())
                    return
                if self.command == "POST" and path.startswith("/v1/workflows/") and path.endswith("/cancel"):
                    body = json.dumps({"error": {"code": "forbidden", "message": gate.FORBIDDEN_CANCEL}})
                    self.answer(403, [("Content-Type", "application/json")], body.encode())
                    return
                req = urllib.request.Request(upstream + path, data=data, method=self.command)
                for h in ("Content-Type", "Accept"):
                    if self.headers.get(h):
                        req.add_header(h, self.headers[h])
                if upstream_token:
                    req.add_header("Authorization", "Bearer " + upstream_token)
                try:
                    with urllib.request.urlopen(req, timeout=15) as resp:
                        status, headers, body = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as e:
                    status, headers, body = e.code, e.headers, e.read()
                keep = ("Content-Type", "Cache-Control", "ETag", "Content-Security-Policy")
                self.answer(status, [(k, headers[k]) for k in keep if headers.get(k)], body)

            do_GET = do_POST = do_PUT = do_DELETE = proxy

        self.refused = 0
        self.upstream_api = Api(upstream, upstream_token)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def gated(path, then=None):
    """A task that runs until `path` exists (bounded by GATE_TICKS), then `then`."""
    script = (f'i=0; while [ ! -e "$1" ] && [ $i -lt {GATE_TICKS} ]; do sleep 0.1; i=$((i+1)); done; '
              f'[ -e "$1" ]{" && " + then if then else ""}')
    return {"command": ["sh", "-c", script, "sh", path]}


def small_workflow(gate):
    """A diamond (start -> left, shards[3] -> join) with a failure handler and an `any` join.
    `start` waits for the file `gate`, so the page sees it running before anything ends."""
    nodes = [
        {"id": "start", "task": gated(gate, r'printf "\\377\\000\\001" > "$TASKRAFT_RESULT_OUT"')},
        {"id": "left", "task": {"command": ["sleep", "0.3"]}, "depends": [{"node": "start"}]},
        {"id": "shards", "depends": [{"node": "start"}], "shards": {"count": 3},
         "task": {"command": ["sh", "-c", 'sleep 0.3; echo "shard $TASKRAFT_SHARD_INDEX" > "$TASKRAFT_RESULT_OUT"']}},
        {"id": "join", "depends": [{"node": "left"}, {"node": "shards"}],
         "task": {"command": ["sh", "-c", 'printf "<b>joined</b>" > "$TASKRAFT_RESULT_OUT"']}},
        {"id": "on_fail", "task": {"command": ["true"]}, "depends": [{"node": "join", "on": "failure"}]},
        {"id": "report", "task": {"command": ["true"]}, "trigger": "any",
         "depends": [{"node": "join", "on": "not_failed"}, {"node": "on_fail", "on": "always"}]},
    ]
    return nodes


def large_workflow(gate):
    """200 nodes: a binary tree under a root that waits for `gate` (never created: the test
    cancels it), some cross edges, and one node of 1000 shards."""
    nodes = [{"id": "root", "task": gated(gate)}]
    for i in range(1, 200):
        depends = [{"node": nodes[(i - 1) // 2]["id"]}]
        if i % 7 == 0 and i > 3:
            depends.append({"node": nodes[i - 3]["id"], "on": "always"})
        node = {"id": f"n{i:03d}", "task": {"command": ["true"]}, "depends": depends}
        if i == 199:
            node["id"] = "wide"
            node["shards"] = {"count": 1000, "max_parallel": 10}
        nodes.append(node)
    return nodes


def edge_set(nodes):
    return {(e["node"], n["id"], e.get("on", "success")) for n in nodes for e in n.get("depends", [])}


def make_driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(WAIT_S)
    return driver


class Run:
    """One pass of every page through one replica."""

    def __init__(self, driver, base, label, out, token, login, final, workers, results, files, gate=None):
        self.d = driver
        self.base = base.rstrip("/")
        self.label = label
        self.out = out
        self.token = token
        self.login = login  # "prompt" or "url"
        self.final = final
        self.workers = workers
        self.api = Api(base, token)
        self.results = results
        self.gate = gate
        # Files the gated tasks of this pass wait for (workers run on this machine).
        self.files = os.path.join(files, label)
        os.makedirs(self.files)

    # ---- helpers

    def wait(self, what, predicate, timeout=WAIT_S):
        def safe(_):
            try:
                return predicate()
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(safe)
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}") from None

    def css(self, selector):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector):
        found = self.css(selector)
        return found[0] if found else None

    def go(self, fragment):
        self.d.execute_script("location.hash = arguments[0]", fragment)
        self.wait(f"page {fragment}", lambda: self.one("#page").get_attribute("data-page") is not None)

    def shot(self, name):
        path = os.path.join(self.out, f"{self.label}-{name}.png")
        self.d.save_screenshot(path)
        print(f"    screenshot {path}")

    def check(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            self.results.append((f"{self.label}: {name}", False))
            print(f"  FAIL {self.label}: {name} ({time.monotonic() - t0:.1f} s): {e}")
            traceback.print_exc(limit=3)
            try:
                self.shot(f"FAILED-{name.replace(' ', '-')}")
            except Exception:  # noqa: BLE001
                pass
            return False
        self.results.append((f"{self.label}: {name}", True))
        print(f"  ok   {self.label}: {name} ({time.monotonic() - t0:.1f} s)")
        return True

    def row(self, table, key):
        return self.one(f"#{table} tbody tr[data-key='{key}']")

    def submit_task(self, command, name=None, executor=None):
        self.go("#/tasks")
        self.wait("the submit form", lambda: self.one("#submit-command") is not None)
        self.d.execute_script("document.getElementById('submit-msg').replaceChildren()")
        self.one("#submit-command").send_keys(command)
        if name is not None:
            self.one("#submit-name").send_keys(name)
        if executor is not None:
            Select(self.one("#submit-executor")).select_by_value(executor)
        self.one("#submit-button").click()
        def submitted():
            if self.one("#submit-msg.err"):
                raise AssertionError("submit refused: " + self.one("#submit-msg").text)
            return self.one("#submit-msg a.task-link")
        link = self.wait("the submitted task's link", submitted)
        return int(link.text.lstrip("#"))

    # ---- the checks

    def run(self):
        if self.gate:
            self.check("token prompt: refused, accepted, sent, forgotten", self.open_gated)
            self.check("cluster page", self.cluster)
            self.check("submit a task through the form; it succeeds", self.submit_and_finish)
            self.check("a 403 is shown inline", self.forbidden)
            self.check("a 403 on a workflow cancel is shown inline", self.forbidden_cancel)
            self.check("forget the token", self.forget)
            self.check("no script errors", self.console_clean)
            return
        self.check("open and log in", self.open)
        self.check("cluster page", self.cluster)
        self.check("workers page", self.workers_page)
        self.check("submit a task through the form; it succeeds", self.submit_and_finish)
        self.check("cancel a long task from its detail page", self.cancel_long)
        self.check("filters", self.filters)
        self.check("schedules: pause, resume, trigger", self.schedules)
        self.check("workflow graph layout and list paging in the browser", self.dag_layout)
        self.check("workflow: drawn, live to succeeded, node panel", self.workflow)
        self.check("workflow node ids with markup are refused", self.node_ids_validated)
        self.check("a 200-node workflow renders and is cancelled", self.large_workflow)
        if self.final:
            self.check("workers: drain and remove", self.drain_and_remove)
        self.check("no script errors", self.console_clean)

    def open(self):
        if self.token and self.login == "url":
            self.d.get(f"{self.base}/#/cluster?token={self.token}")
            self.wait("the token to leave the URL", lambda: "token=" not in self.d.current_url)
            stored = self.d.execute_script("return localStorage.getItem('taskraft.token')")
            assert stored == self.token, "the #token= value was not stored"
        else:
            self.d.get(f"{self.base}/#/cluster")
            if self.token:
                # Auth may be on (a 401 opens the prompt) or off (nothing asks).
                self.wait("the token prompt or the cluster table", lambda: self.one("#login:not([hidden])")
                          or self.css("#cluster-members tbody tr"))
                if self.one("#login:not([hidden])"):
                    self.shot("token-prompt")
                    self.one("#token-input").send_keys(self.token)
                    self.one("#token-save").click()
                    self.wait("the prompt to close", lambda: self.one("#login[hidden]"))
        self.wait("the cluster table", lambda: self.css("#cluster-members tbody tr"))
        assert self.one("#login[hidden]") is not None, "the token prompt is open: " + self.one("#login-reason").text

    def open_gated(self):
        self.d.get(f"{self.base}/#/cluster")
        self.wait("the token prompt", lambda: self.one("#login:not([hidden])"))
        self.shot("token-prompt")
        self.one("#token-input").send_keys("not-the-token")
        self.one("#token-save").click()
        self.wait("the wrong token refused", lambda: self.one("#login:not([hidden])")
                  and "not accepted" in self.one("#login-reason").text)
        self.one("#token-input").send_keys(self.token)
        self.one("#token-save").click()
        self.wait("the prompt to close", lambda: self.one("#login[hidden]"))
        self.wait("the cluster table", lambda: self.css("#cluster-members tbody tr"))
        stored = self.d.execute_script("return localStorage.getItem('taskraft.token')")
        assert stored == self.token, f"stored token is {stored!r}"
        refused = self.gate.refused
        self.d.refresh()
        self.wait("the cluster table after a reload", lambda: self.css("#cluster-members tbody tr"))
        assert self.one("#login[hidden]") is not None, "asked for the token again after a reload"
        assert self.gate.refused == refused, "a request went out without the stored token"

    def forbidden(self):
        self.go("#/workers")
        self.wait("worker-1 listed", lambda: self.row("workers-table", "worker-1") is not None)
        self.row("workers-table", "worker-1").find_element(By.CSS_SELECTOR, ".worker-drain").click()
        self.wait("the 403 message", lambda: self.one("#workers-msg.err")
                  and AuthGate.FORBIDDEN in self.one("#workers-msg").text)
        assert self.one("#workers-msg").text.startswith("Forbidden"), self.one("#workers-msg").text
        assert self.one("#login[hidden]") is not None, "a 403 must not ask for another token"
        self.shot("forbidden")

    def forget(self):
        self.go("#/cluster")
        self.one("#token-forget").click()
        self.wait("the token prompt again", lambda: self.one("#login:not([hidden])"))
        assert self.d.execute_script("return localStorage.getItem('taskraft.token')") is None

    def cluster(self):
        self.go("#/cluster")
        members = self.api.call("GET", "/v1/cluster")["members"]
        self.wait(f"{len(members)} member rows", lambda: len(self.css("#cluster-members tbody tr")) == len(members))
        self.wait("exactly one leader row", lambda: len(self.css("#cluster-members tbody tr[data-role='leader']")) == 1)
        self.wait("a known leader", lambda: self.one("#cluster-leader").text[:1].isdigit())
        self.wait("every replica healthy", lambda: all(
            td.text == "ok" for td in self.css("#cluster-members tbody td.health")))
        assert len(members) == 3, f"the dev cluster has 3 members, /v1/cluster shows {len(members)}"
        self.wait("the task counts", lambda: self.css("#task-counts .count"))
        self.shot("cluster")

    def workers_page(self):
        self.go("#/workers")
        self.wait(f"{self.workers} worker rows", lambda: len(self.css("#workers-table tbody tr")) >= self.workers)
        for i in range(1, self.workers + 1):
            self.wait(f"worker-{i} listed", lambda i=i: self.row("workers-table", f"worker-{i}") is not None)
        first = self.row("workers-table", "worker-1")
        self.wait("worker-1's heartbeat age", lambda: first.find_elements(By.TAG_NAME, "td")[8].text.endswith("ago"))
        self.shot("workers")

    def submit_and_finish(self):
        marker = f"dashboard-{self.label}-{int(time.time() * 1000)}"
        name = f"ui {self.label} {HOSTILE}"
        task = self.submit_task(json.dumps(["sh", "-c", f"echo {marker}; sleep 0.3"]), name=name)
        self.wait(f"task {task} to appear", lambda: self.row("tasks-table", task) is not None)
        self.wait(f"task {task} to succeed (live, no reload)",
                  lambda: self.row("tasks-table", task).get_attribute("data-state") == "succeeded")
        cell = self.row("tasks-table", task).find_elements(By.TAG_NAME, "td")[1]
        assert cell.text == name, f"name cell shows {cell.text!r}"
        assert not cell.find_elements(By.CSS_SELECTOR, "img, b"), "a task name was rendered as markup"
        assert self.d.execute_script("return window.__pwned") is None, "a task name ran script"
        self.shot("tasks")
        self.row("tasks-table", task).find_element(By.CSS_SELECTOR, "a.task-link").click()
        self.wait("the detail page", lambda: self.one("#task-state") is not None)
        self.wait("the output tail", lambda: marker in self.one("#task-output").text)
        self.wait("one attempt", lambda: len(self.css("#task-attempts tbody tr")) == 1)
        assert self.one("#task-state").get_attribute("data-state") == "succeeded"
        assert not self.one("#task-cancel").is_enabled(), "cancel is enabled on a finished task"
        self.shot("task-detail")

    def cancel_long(self):
        task = self.submit_task("60000", name=f"long {self.label}", executor="sleep")
        self.wait(f"task {task} to appear", lambda: self.row("tasks-table", task) is not None)
        self.row("tasks-table", task).find_element(By.CSS_SELECTOR, "a.task-link").click()
        self.wait("the task to run", lambda: self.one("#task-state").get_attribute("data-state") == "running")
        self.one("#cancel-reason").send_keys("cancelled by the browser test")
        self.one("#task-cancel").click()
        self.wait("the task to be cancelled",
                  lambda: self.one("#task-state").get_attribute("data-state") == "cancelled")
        self.wait("the cancel reason", lambda: "cancelled by the browser test" in self.one("#task-cancelnote").text)
        assert self.api.call("GET", f"/v1/tasks/{task}")["state"] == "cancelled"
        self.shot("task-cancelled")

    def filters(self):
        self.go("#/tasks")
        Select(self.one("#filter-state")).select_by_value("cancelled")
        self.wait("only cancelled rows", lambda: self.css("#tasks-table tbody tr") and all(
            tr.get_attribute("data-state") == "cancelled" for tr in self.css("#tasks-table tbody tr")))
        assert "state=cancelled" in self.d.current_url, "the filter is not in the URL"
        Select(self.one("#filter-state")).select_by_value("")
        self.one("#filter-name").send_keys(f"ui {self.label}")
        self.wait("only this pass's named task", lambda: self.css("#tasks-table tbody tr") and all(
            f"ui {self.label}" in tr.find_elements(By.TAG_NAME, "td")[1].text
            for tr in self.css("#tasks-table tbody tr")))
        self.one("#filter-name").clear()

    def schedules(self):
        s = self.api.call("POST", "/v1/schedules", {
            "name": f"ui-{self.label}", "cron": "0 0 1 1 *", "task": {"command": ["echo", f"run-{self.label}"]},
        })
        sid = s["id"]
        self.go("#/schedules")
        self.wait(f"schedule {sid} listed", lambda: self.row("schedules-table", sid) is not None)
        self.wait("its next fires", lambda: self.row("schedules-table", sid).find_elements(By.TAG_NAME, "td")[4].text != "—")
        self.row("schedules-table", sid).find_element(By.CSS_SELECTOR, ".sched-pause").click()
        self.wait("paused", lambda: self.row("schedules-table", sid).get_attribute("data-paused") == "true")
        self.shot("schedules-paused")
        self.row("schedules-table", sid).find_element(By.CSS_SELECTOR, ".sched-resume").click()
        self.wait("resumed", lambda: self.row("schedules-table", sid).get_attribute("data-paused") == "false")
        self.row("schedules-table", sid).find_element(By.CSS_SELECTOR, ".sched-trigger").click()
        self.wait("the triggered run's link", lambda: self.one("#schedules-msg a.task-link"))
        run = int(self.one("#schedules-msg a.task-link").text.lstrip("#"))
        self.wait("the runs counter", lambda: self.row("schedules-table", sid).find_elements(By.TAG_NAME, "td")[7].text == "1")
        self.wait("the triggered counter", lambda: "triggered 1" in self.row("schedules-table", sid).find_elements(By.TAG_NAME, "td")[6].text)
        self.shot("schedules")
        self.row("schedules-table", sid).find_elements(By.TAG_NAME, "td")[7].find_element(By.TAG_NAME, "a").click()
        self.wait("the schedule's runs", lambda: self.row("tasks-table", run) is not None)
        self.wait("the run to succeed", lambda: self.row("tasks-table", run).get_attribute("data-state") == "succeeded")

    def drain_and_remove(self):
        victim = f"worker-{self.workers}"
        self.go("#/workers")
        self.wait(f"{victim} active", lambda: self.row("workers-table", victim).get_attribute("data-state") == "active")
        self.row("workers-table", victim).find_element(By.CSS_SELECTOR, ".worker-drain").click()
        self.wait(f"{victim} draining", lambda: self.row("workers-table", victim).get_attribute("data-state") == "draining")
        self.shot("workers-draining")
        self.row("workers-table", victim).find_element(By.CSS_SELECTOR, ".worker-remove").click()
        self.wait("the confirmation", lambda: self.d.switch_to.alert)
        self.d.switch_to.alert.accept()
        self.wait(f"{victim} removed", lambda: self.row("workers-table", victim).get_attribute("data-state") == "removed")
        self.shot("workers-removed")

    # ---- workflows

    def node(self, node_id):
        return self.one(f"#wf-dag g.wf-node[data-node='{node_id}']")

    def node_states(self):
        return self.d.execute_script(
            "return Object.fromEntries(Array.from(document.querySelectorAll('#wf-dag g.wf-node'))"
            ".map((g) => [g.getAttribute('data-node'), g.getAttribute('data-state')]))")

    def drawn_edges(self):
        return {tuple(x) for x in self.d.execute_script(
            "return Array.from(document.querySelectorAll('#wf-dag path.edge'))"
            ".map((p) => [p.getAttribute('data-from'), p.getAttribute('data-to'), p.getAttribute('data-on')])")}

    def pick(self, node_id):
        self.node(node_id).click()
        self.wait(f"the panel of node {node_id}", lambda: self.one("#wf-node:not([hidden])")
                  and self.one("#wf-node-title").text == f"Node {node_id}")
        assert f"node={node_id}" in self.d.current_url, "the picked node is not in the URL"

    def dag_layout(self):
        # The layout code itself, in this browser: layers by longest path, a crossing that the
        # initial order has and the barycenter sweeps remove, and a big graph in bounded time.
        self.go("#/workflows")
        r = self.d.execute_script("""
            const twisted = layoutDag([
              { id: 'a1', depends: [] }, { id: 'a2', depends: [] },
              { id: 'b1', depends: [{ node: 'a2' }] }, { id: 'b2', depends: [{ node: 'a1' }] },
              { id: 'c1', depends: [{ node: 'b2' }] }, { id: 'c2', depends: [{ node: 'b1' }] }]);
            const skip = layoutDag([
              { id: 'x', depends: [] }, { id: 'y', depends: [{ node: 'x' }] },
              { id: 'z', depends: [{ node: 'x' }, { node: 'y' }] }]);
            const chain = [];
            for (let i = 0; i < 1000; i++) {
              chain.push({ id: 'c' + i, depends: i ? [{ node: 'c' + (i - 1) }, { node: 'c0' }] : [] });
            }
            const t0 = performance.now();
            const big = layoutDag(chain);
            return { twisted: twisted.crossings, at: twisted.nodes.map((n) => [n.id, n.layer, n.y]),
                     layers: skip.nodes.map((n) => n.layer), zpath: skip.edges.find((e) => e.from === 'x' && e.to === 'z').d,
                     ms: performance.now() - t0, bigLayers: big.layers, bigEdges: big.edges.length };
        """)
        assert r["twisted"] == 0, f"the barycenter sweeps left {r['twisted']} crossing(s): {r['at']}"
        assert r["layers"] == [0, 1, 2], f"layers by longest path: {r['layers']}"
        assert r["zpath"].count("C") == 2, f"x->z spans two layers and bends through one dummy: {r['zpath']}"
        assert r["bigLayers"] == 1000 and r["bigEdges"] == 1998, r
        assert r["ms"] < 5000, f"1000 nodes took {r['ms']:.0f} ms to lay out"
        print(f"    1000-node chain laid out in {r['ms']:.0f} ms")
        # The workflows list finds the newest id by probing "the smallest id after x" when there
        # is more than one page; checked here against id sets with gaps (retention).
        found = self.d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const sets = [[1, 1000, 1001], [5, 1000, 2500, 2501, 9000], [3, 1000, 123456789], [1000, 1001, 1002, 1003]];
            Promise.all(sets.map(async (ids) => {
              let probes = 0;
              const after = async (x) => { probes++; const r = ids.find((i) => i > x); return r === undefined ? null : r; };
              return [await newestWorkflowId(1000, after), Math.max(...ids), probes];
            })).then(done, (e) => done(String(e)));
        """)
        assert isinstance(found, list), found
        for got, want, probes in found:
            assert got == want and probes <= 120, f"newest id {got}, want {want} ({probes} probes)"

    def workflow(self):
        gate = os.path.join(self.files, "go")
        name = f"wf {self.label} {HOSTILE}"
        nodes = small_workflow(gate)
        wid = self.api.call("POST", "/v1/workflows", {"name": name, "nodes": nodes})["id"]
        self.go("#/workflows")
        self.wait(f"workflow {wid} listed", lambda: self.row("workflows-table", wid) is not None)
        self.wait("its node counts", lambda: "running" in self.row("workflows-table", wid).find_elements(By.TAG_NAME, "td")[3].text)
        cell = self.row("workflows-table", wid).find_elements(By.TAG_NAME, "td")[1]
        assert cell.text == name, f"name cell shows {cell.text!r}"
        assert not cell.find_elements(By.CSS_SELECTOR, "img, b"), "a workflow name was rendered as markup"
        self.shot("workflows")
        self.row("workflows-table", wid).find_element(By.CSS_SELECTOR, "a.wf-link").click()
        self.wait("6 node boxes", lambda: len(self.css("#wf-dag g.wf-node")) == len(nodes))
        assert self.drawn_edges() == edge_set(nodes), f"edges drawn: {sorted(self.drawn_edges())}"
        assert len(self.css("#wf-dag path.edge")) == 7
        assert self.node("report").get_attribute("data-trigger") == "any", "the any node is not marked"
        assert "ANY" in self.node("report").text.upper()
        name_dd = self.one("#wf-name")
        assert name_dd.text == name, f"the name shows {name_dd.text!r}"
        assert not name_dd.find_elements(By.CSS_SELECTOR, "img, b"), "a workflow name was rendered as markup"
        assert self.d.execute_script("return window.__pwned") is None, "a workflow name ran script"
        # Live: start runs (shown in words, not only by colour) while the rest wait.
        self.wait("start running", lambda: self.node("start").get_attribute("data-state") == "running")
        assert "running" in self.node("start").text, f"start's box reads {self.node('start').text!r}"
        states = self.node_states()
        assert all(v == "waiting" for k, v in states.items() if k != "start"), states
        assert "0/3" in self.node("shards").text, f"shards box reads {self.node('shards').text!r}"
        self.d.execute_script("document.getElementById('wf-dag').setAttribute('data-mark', 'first')")
        self.shot("workflow-running")
        with open(gate, "w", encoding="utf-8"):
            pass
        self.wait("the workflow to succeed (live, no reload)",
                  lambda: self.one("#wf-state").get_attribute("data-state") == "succeeded")
        want = {"start": "succeeded", "left": "succeeded", "shards": "succeeded", "join": "succeeded",
                "on_fail": "skipped", "report": "succeeded"}
        self.wait(f"node states {want}", lambda: self.node_states() == want)
        assert self.one("#wf-dag").get_attribute("data-mark") == "first", "the graph was drawn again (flicker)"
        assert "3/3" in self.node("shards").text, f"shards box reads {self.node('shards').text!r}"
        assert "skipped" in self.node("on_fail").text
        unmet = [p.get_attribute("data-to") for p in self.css("#wf-dag path.edge.unmet")]
        assert unmet == ["on_fail"], f"edges drawn as unmet: {unmet}"
        self.shot("workflow")
        # The node panel: tasks (links), results (text escaped, binary as a size), reasons.
        self.pick("shards")
        self.wait("3 shard rows", lambda: len(self.css("#wf-node-tasks tbody tr")) == 3)
        rows = self.css("#wf-node-tasks tbody tr")
        shards = [tr.find_elements(By.TAG_NAME, "td")[0].text for tr in rows]
        assert shards == ["0", "1", "2"], shards
        results = [tr.find_elements(By.TAG_NAME, "td")[3].text.strip() for tr in rows]
        assert results == ["shard 0", "shard 1", "shard 2"], results
        assert all(tr.get_attribute("data-state") == "succeeded" for tr in rows)
        view = self.api.call("GET", f"/v1/workflows/{wid}")
        ids = [t["task_id"] for n in view["nodes"] if n["id"] == "shards" for t in n["tasks"]]
        assert [int(tr.find_element(By.CSS_SELECTOR, "a.task-link").text.lstrip("#")) for tr in rows] == ids
        assert "3 succeeded" in self.one("#wf-node-shards").text, self.one("#wf-node-shards").text
        self.shot("workflow-node")
        self.pick("start")
        self.wait("start's binary result", lambda: self.css("#wf-node-tasks .result-binary"))
        assert self.one("#wf-node-tasks .result-binary").text == "3 bytes, binary"
        self.pick("join")
        self.wait("join's text result", lambda: self.css("#wf-node-tasks pre.result-text"))
        pre = self.one("#wf-node-tasks pre.result-text")
        assert pre.text == "<b>joined</b>", f"join's result shows {pre.text!r}"
        assert not pre.find_elements(By.TAG_NAME, "b"), "a result was rendered as markup"
        self.pick("on_fail")
        self.wait("on_fail skipped", lambda: self.one("#wf-node-state").get_attribute("data-state") == "skipped")
        why = self.one("#wf-node-reason").text
        assert why and why != "—", f"no reason for the skipped node: {why!r}"
        assert not self.css("#wf-node-tasks tbody tr"), "a skipped node has no task"
        self.one("#wf-node-parents button.wf-pick[data-node='join']").click()
        self.wait("the parent picked from the panel", lambda: self.one("#wf-node-title").text == "Node join")
        assert "selected" in self.node("join").get_attribute("class")
        self.shot("workflow-skipped")
        link = self.one("#wf-node-tasks a.task-link")
        task = int(link.text.lstrip("#"))
        link.click()
        self.wait(f"task {task}'s page", lambda: self.one("#task-state") is not None
                  and self.one("#task-title").text == f"Task #{task}")
        self.wait("the task succeeded", lambda: self.one("#task-state").get_attribute("data-state") == "succeeded")
        back = self.one("#task-origin a.wf-link")
        assert back is not None and back.text == f"workflow {wid}", self.one("#task-origin").text
        back.click()
        self.wait("back on the workflow's graph", lambda: self.one("#wf-title") is not None
                  and self.one("#wf-title").text == f"Workflow #{wid}" and len(self.css("#wf-dag g.wf-node")) == len(nodes))

    def node_ids_validated(self):
        try:
            self.api.call("POST", "/v1/workflows", {
                "name": "bad ids", "nodes": [{"id": "<b>x</b>", "task": {"command": ["true"]}}]})
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            assert e.code == 422, f"answered {e.code}: {body}"
            assert "id" in body["error"]["message"], body
            return
        raise AssertionError("a node id with markup was accepted")

    def large_workflow(self):
        nodes = large_workflow(os.path.join(self.files, "never"))
        wid = self.api.call("POST", "/v1/workflows", {"name": f"large {self.label}", "nodes": nodes})["id"]
        t0 = time.monotonic()
        self.go(f"#/workflows/{wid}")
        self.wait("200 node boxes", lambda: len(self.css("#wf-dag g.wf-node")) == 200)
        print(f"    200 nodes drawn {time.monotonic() - t0:.1f} s after opening the page")
        assert self.drawn_edges() == edge_set(nodes), "the large graph's edges differ"
        boxes = self.d.execute_script(
            "return Array.from(document.querySelectorAll('#wf-dag g.wf-node')).map((g) => g.getBBox && "
            "[g.getAttribute('transform'), g.getBBox().height])")
        columns = {}
        for transform, height in boxes:
            x, y = (float(v) for v in transform[len("translate("):-1].split(","))
            columns.setdefault(x, []).append((y, height))
        for x, col in columns.items():
            col.sort()
            for (y0, h0), (y1, _) in itertools.pairwise(col):
                assert y1 >= y0 + h0, f"boxes overlap in the column at x={x}: y {y0} and {y1}"
        # Opened at a readable zoom, scrolled so that boxes of every layer (the root too) show.
        shown = self.d.execute_script("""
            const frame = document.getElementById('wf-graph').getBoundingClientRect();
            const root = document.querySelector("#wf-dag g.wf-node[data-node='root']").getBoundingClientRect();
            return [root.top >= frame.top && root.bottom <= frame.bottom, document.getElementById('wf-zoom').textContent];
        """)
        assert shown[0], f"the root box is scrolled out of the graph's frame (zoom {shown[1]})"
        assert int(shown[1].rstrip("%")) >= 50, f"opened at zoom {shown[1]}"
        self.shot("workflow-large")
        self.one("#wf-zoom-fit").click()
        self.wait("the whole graph in the frame", lambda: self.d.execute_script("""
            const frame = document.getElementById('wf-graph'), svg = document.getElementById('wf-dag');
            const box = svg.getBoundingClientRect();
            return box.height <= frame.clientHeight + 1 && box.width <= frame.clientWidth + 1;"""))
        self.wait("root running", lambda: self.node("root").get_attribute("data-state") == "running")
        assert "0/1000" in self.node("wide").text, f"the 1000-shard box reads {self.node('wide').text!r}"
        self.shot("workflow-large-fit")
        self.one("#wf-cancel-reason").send_keys("cancelled by the browser test")
        self.one("#wf-cancel").click()
        self.wait("the confirmation", lambda: self.d.switch_to.alert)
        self.d.switch_to.alert.accept()
        self.wait("the workflow cancelled", lambda: self.one("#wf-state").get_attribute("data-state") == "cancelled")
        self.wait("every node cancelled", lambda: set(self.node_states().values()) == {"cancelled"})
        assert "cancelled by the browser test" in self.one("#wf-cancelnote").text, self.one("#wf-cancelnote").text
        assert not self.one("#wf-cancel").is_enabled(), "cancel is enabled on a cancelled workflow"
        assert self.api.call("GET", f"/v1/workflows/{wid}")["state"] == "cancelled"
        self.pick("wide")
        note = self.one("#wf-node-tasks-note").text
        assert "1000 not created" in note, f"the 1000-shard node's panel says {note!r}"
        assert "1000 (" in self.one("#wf-node-shards").text and "at most 10 at once" in self.one("#wf-node-shards").text
        self.shot("workflow-cancelled")

    def forbidden_cancel(self):
        nodes = [{"id": "wait", "task": gated(os.path.join(self.files, "never"))}]
        wid = self.api.call("POST", "/v1/workflows", {"name": "forbidden", "nodes": nodes})["id"]
        try:
            self.go(f"#/workflows/{wid}")
            self.wait("the graph", lambda: len(self.css("#wf-dag g.wf-node")) == 1)
            self.one("#wf-cancel").click()
            self.wait("the confirmation", lambda: self.d.switch_to.alert)
            self.d.switch_to.alert.accept()
            self.wait("the 403 message", lambda: self.one("#wf-msg.err")
                      and AuthGate.FORBIDDEN_CANCEL in self.one("#wf-msg").text)
            assert self.one("#wf-msg").text.startswith("Forbidden"), self.one("#wf-msg").text
            assert self.one("#login[hidden]") is not None, "a 403 must not ask for another token"
            assert self.one("#wf-cancel").is_enabled(), "the button stays usable after a 403"
            assert self.one("#wf-state").get_attribute("data-state") == "running"
            self.shot("workflow-forbidden")
        finally:
            # The gate refuses the cancel; stop the waiting task behind its back.
            self.gate.upstream_api.call("POST", f"/v1/workflows/{wid}/cancel", {"reason": "test cleanup"})

    def console_clean(self):
        # A 401 before logging in and the gate's 403 are answers the page shows, not errors.
        expected = ("status of 401 ", "status of 403 ")
        bad = [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"
               and not any(x in e.get("message", "") for x in expected)]
        assert not bad, "browser console errors: " + "; ".join(e["message"] for e in bad)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="http://127.0.0.1:7101", help="any replica's API URL")
    p.add_argument("--out", default=None, help="screenshots go here (default: a new temp dir)")
    p.add_argument("--workers", type=int, default=2, help="workers the cluster runs")
    args = p.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="taskraft-dashboard-")
    os.makedirs(out, exist_ok=True)
    token = read_token()
    print(f"screenshots: {out}")

    status = Api(args.base, token).call("GET", "/v1/cluster")
    addr = {m["id"]: m["api_addr"] for m in status["members"]}
    leader = status["leader_id"]
    assert leader is not None, "no leader"
    follower = next(i for i in sorted(addr) if i != leader)
    passes = [("follower", follower, "prompt"), ("leader", leader, "url")]

    results = []
    t0 = time.monotonic()
    files = tempfile.TemporaryDirectory(prefix="taskraft-dashboard-files-")
    for n, (label, node, login) in enumerate(passes):
        base = f"http://{addr[node]}"
        print(f"== through the {label} (replica {node}, {base})")
        driver = make_driver()
        try:
            Run(driver, base, label, out, token, login, n == len(passes) - 1, args.workers, results, files.name).run()
        finally:
            driver.quit()
    secret = f"gate-{os.getpid()}-{time.time_ns()}"
    gate = AuthGate(f"http://{addr[follower]}", secret, token)
    print(f"== through a token-checking proxy in front of replica {follower} ({gate.base})")
    driver = make_driver()
    try:
        Run(driver, gate.base, "auth-gate", out, secret, "prompt", False, args.workers, results, files.name, gate=gate).run()
    finally:
        driver.quit()
        gate.close()
        files.cleanup()
    failed = [name for name, ok in results if not ok]
    print(f"browser test took {time.monotonic() - t0:.1f} s; screenshots in {out}")
    for name in failed:
        print(f"FAILED: {name}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
