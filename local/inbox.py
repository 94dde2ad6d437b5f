"""The approval inbox: what a Handover approver sees, as plain server-rendered HTML.

Pending decisions with their action, context, urgency and time left, each with approve,
deny and (where offered) modify; resolved ones stay listed with who resolved them and when.
No scripts and no external assets; everything the model wrote is escaped by Jinja.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask, redirect, render_template_string, request

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Approval inbox{% if pending %} ({{ pending|length }}){% endif %}</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 14px 24px; display: flex; align-items: baseline; gap: 16px; }
  header h1 { font-size: 18px; margin: 0; }
  header a { color: #9cc3ff; }
  main { max-width: 920px; margin: 0 auto; padding: 16px 24px 48px; }
  h2 { font-size: 16px; margin: 24px 0 8px; }
  .decision { background: #fff; border-radius: 8px; padding: 16px 18px; margin: 12px 0;
              border-left: 6px solid #8a94a6; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  .urgency-high { border-left-color: #e8a317; } .urgency-critical { border-left-color: #d64545; }
  .urgency-low { border-left-color: #4caf50; }
  .decision h3 { margin: 0 0 4px; font-size: 17px; }
  .meta { color: #5b6475; margin: 0 0 10px; font-size: 13px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8ebf0; font-weight: 600; }
  pre.context { white-space: pre-wrap; word-break: break-word; background: #f7f8fa; padding: 10px;
                border-radius: 6px; font-size: 13px; margin: 0 0 12px; }
  form { display: grid; gap: 8px; }
  label { display: grid; gap: 3px; font-size: 13px; color: #3a4252; }
  input, textarea { font: inherit; padding: 6px 8px; border: 1px solid #c9cfd8; border-radius: 5px; }
  textarea { min-height: 48px; }
  .buttons { display: flex; gap: 8px; }
  button { font: inherit; font-weight: 600; padding: 7px 16px; border-radius: 5px; border: 0; cursor: pointer; }
  button.approve { background: #1f883d; color: #fff; } button.deny { background: #cf222e; color: #fff; }
  button.modify { background: #0969da; color: #fff; } button.option { background: #6e7781; color: #fff; }
  table { width: 100%; border-collapse: collapse; background: #fff; border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid #eceef2; font-size: 13px;
           vertical-align: top; }
  .status-approved { color: #1f883d; } .status-denied { color: #cf222e; } .status-expired { color: #8a94a6; }
  .status-modified { color: #0969da; }
  .empty { color: #5b6475; }
  .error { background: #ffebe9; color: #82071e; padding: 8px 12px; border-radius: 6px; }
</style>
</head>
<body>
<header><h1>Approval inbox</h1><span>Handover-compatible, local</span><a href="/">Refresh</a></header>
<main>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<h2>Waiting for you ({{ pending|length }})</h2>
{% for d in pending %}
<article class="decision urgency-{{ d.urgency }}" data-decision-id="{{ d.id }}">
  <h3>{{ d.action }}</h3>
  <p class="meta"><span class="badge">{{ d.urgency }}</span> · <span class="time-left">{{ d.time_left }}</span> left
     · for {{ d.approver }} · {{ d.id }}</p>
  {% if d.context %}<pre class="context">{{ d.context }}</pre>{% endif %}
  <form method="post" action="/inbox/{{ d.id }}/resolve">
    <label>Your email <input name="resolved_by" value="{{ d.approver }}"></label>
    <label>Notes for the agent <textarea name="notes"></textarea></label>
    {% if "modify" in d.options %}
    <label>Changed values, as JSON (for Modify)
      <textarea name="response_data" placeholder='{"amount": 200}'></textarea></label>
    {% endif %}
    <div class="buttons">
      {% if "approve" in d.options %}<button class="approve" name="action" value="approve">Approve</button>{% endif %}
      {% if "deny" in d.options %}<button class="deny" name="action" value="deny">Deny</button>{% endif %}
      {% if "modify" in d.options %}<button class="modify" name="action" value="modify">Modify</button>{% endif %}
      {% for option in d.options if option not in ("approve", "deny", "modify") %}
      <button class="option" name="action" value="{{ option }}">{{ option }}</button>
      {% endfor %}
    </div>
  </form>
</article>
{% else %}
<p class="empty">Nothing is waiting for a decision.</p>
{% endfor %}
<h2>Resolved</h2>
{% if resolved %}
<table>
  <thead><tr><th>Decision</th><th>Action</th><th>By</th><th>When</th><th>Notes</th></tr></thead>
  <tbody>
  {% for d in resolved %}
  <tr data-decision-id="{{ d.id }}">
    <td class="status-{{ d.status }}">{{ d.status }}</td><td>{{ d.action }}</td>
    <td>{{ d.resolved_by or "—" }}</td><td>{{ d.resolved_at }}</td><td>{{ d.response_notes or "" }}</td>
  </tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p class="empty">No decisions yet.</p>
{% endif %}
</main>
</body>
</html>
"""


def _time_left(expires_at: str) -> str:
    try:
        expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((expires - datetime.now(UTC)).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def register_inbox(app: Flask, emulator: Any) -> None:
    def render(error: str | None = None, status: int = 200):
        decisions = emulator.all_decisions()
        pending = [
            {
                **d,
                "time_left": _time_left(d["expires_at"]),
                "options": d.get("options") or ["approve", "deny", "modify"],
            }
            for d in decisions
            if d["status"] == "pending"
        ]
        resolved = sorted(
            (d for d in decisions if d["status"] != "pending"), key=lambda d: d.get("resolved_at") or "", reverse=True
        )
        return render_template_string(PAGE, pending=pending, resolved=resolved, error=error), status

    @app.get("/")
    def inbox():
        return render()

    @app.post("/inbox/<decision_id>/resolve")
    def inbox_resolve(decision_id: str):
        form = request.form
        body: dict[str, Any] = {"action": form.get("action"), "resolved_by": form.get("resolved_by") or None}
        if form.get("notes", "").strip():
            body["notes"] = form["notes"].strip()
        raw = form.get("response_data", "").strip()
        if raw:
            try:
                body["response_data"] = json.loads(raw)
            except json.JSONDecodeError:
                return render('Changed values must be JSON, for example {"amount": 200}.', 400)
            if not isinstance(body["response_data"], dict):
                return render("Changed values must be a JSON object.", 400)
        _, problem = emulator.resolve(decision_id, body)
        if problem == "not_found":
            return render("That decision does not exist.", 404)
        if problem == "already_resolved":
            return render("That decision was already resolved.", 409)
        if problem:
            return render(problem, 400)
        return redirect("/", code=303)
