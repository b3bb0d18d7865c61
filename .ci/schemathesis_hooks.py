"""Schemathesis hooks for .ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Long-polls are cut short so that a run takes minutes, not hours: `GET /v1/tasks/{id}/wait`
waits 30 s by default and up to 60 s, the worker inbox up to 30 s. Every other value is
sent as generated.
"""

import schemathesis

# Query parameter of each long-poll, and the longest wait sent (ms).
LONG_POLLS = {"/v1/tasks/{id}/wait": "timeout_ms", "/v1/workers/{id}/inbox": "wait_ms"}
MAX_WAIT_MS = 200


def as_int(value):
    """The number a query value stands for (numbers arrive as ints or as text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


@schemathesis.hook
def before_call(ctx, case, kwargs):
    param = LONG_POLLS.get(case.operation.path)
    if param is None:
        return
    query = dict(case.query or {})
    value = query.get(param)
    # Anything else (negative testing: text, lists, negative numbers) is answered 422 at once.
    if value is None or (as_int(value) or 0) > MAX_WAIT_MS:
        query[param] = MAX_WAIT_MS
    case.query = query


@schemathesis.hook
def after_call(ctx, case, response):
    # Slow answers are worth a look (a long-poll not cut short, a lock held too long).
    if response.elapsed > 5:
        print(f"\nslow: {case.method} {case.formatted_path} {case.query} -> {response.status_code} "
              f"in {response.elapsed:.1f} s", flush=True)
