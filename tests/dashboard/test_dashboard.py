#!/usr/bin/env python3
"""Browser test of the web dashboard against a live cluster (run by .ci/dashboard.sh).

Headless Debian chromium driven by selenium loads every page through a follower and then
through the leader (the dashboard must work through any replica), and asserts on the DOM:
the cluster page shows every member and one leader, the workers page lists the workers, a
task submitted through the form runs to `succeeded`, a long task is cancelled from its
detail page, a schedule created through the API is paused, resumed and triggered with the
buttons. The last pass also drains and removes a worker. A screenshot of each page is kept
in the output directory.

With TASKRAFT_TOKEN (or TASKRAFT_TOKEN_FILE) set, the first pass logs in through the token
prompt and the second through `#token=` in the URL, which must then vanish from the URL.
A third pass goes through a small proxy that demands a token of its own the way the server's
auth does (401 JSON on /v1/*, static files open; it sends the real token, if any, upstream),
so the prompt is exercised with auth on or off: a wrong token is refused, the right one is
kept and sent after a reload, "forget" drops it.

Usage: test_dashboard.py --base http://127.0.0.1:7101 [--out DIR] [--workers 2]
Exits non-zero when a check fails; the last line is "N passed, N failed".
"""

import argparse
import http.server
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
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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

    def __init__(self, driver, base, label, out, token, login, final, workers, results, gate=None):
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
    for n, (label, node, login) in enumerate(passes):
        base = f"http://{addr[node]}"
        print(f"== through the {label} (replica {node}, {base})")
        driver = make_driver()
        try:
            Run(driver, base, label, out, token, login, n == len(passes) - 1, args.workers, results).run()
        finally:
            driver.quit()
    secret = f"gate-{os.getpid()}-{time.time_ns()}"
    gate = AuthGate(f"http://{addr[follower]}", secret, token)
    print(f"== through a token-checking proxy in front of replica {follower} ({gate.base})")
    driver = make_driver()
    try:
        Run(driver, gate.base, "auth-gate", out, secret, "prompt", False, args.workers, results, gate=gate).run()
    finally:
        driver.quit()
        gate.close()
    failed = [name for name, ok in results if not ok]
    print(f"browser test took {time.monotonic() - t0:.1f} s; screenshots in {out}")
    for name in failed:
        print(f"FAILED: {name}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
