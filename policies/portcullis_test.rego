# End-to-end decisions for the shipped data.json. The module tests under lib/
# use their own fixtures; these pin down what the starter configuration does,
# so editing data.json and then these tests is a deliberate, reviewed change.
package portcullis_test

import data.portcullis

# Monday 2026-11-23, 12:00 in New York: inside billing hours.
weekday_noon := "2026-11-23T17:00:00Z"

call(agent, route, method, path) := {
	"route": route,
	"agent": {"id": agent},
	"request": {"method": method, "path": path, "query": {}, "headers": {}},
	"time": weekday_noon,
}

with_body(c, body) := object.union(c, {"request": object.union(c.request, {"body": body})})

deny(reasons) := {"allow": false, "reasons": reasons}

# --- The decision's shape ---

test_empty_input_is_denied if {
	portcullis.decision == deny(["unauthenticated agent"]) with input as {}
}

test_no_input_is_denied if {
	portcullis.decision.allow == false
}

test_decision_is_always_an_object_with_a_boolean_and_reasons if {
	every c in [
		{},
		call("support-bot", "github", "GET", "/"),
		call("support-bot", "github", "DELETE", "/"),
		call("nobody", "nowhere", "GET", "/"),
	] {
		d := portcullis.decision with input as c
		is_boolean(d.allow)
		is_array(d.reasons)
		count(d.reasons) > 0
	}
}

# --- github: read-only for support-bot ---

test_github_read_is_allowed if {
	portcullis.decision == {"allow": true, "reasons": ["github: read-only"]} with input as call("support-bot", "github", "GET", "/repos/acme/app/issues")
}

test_github_write_has_no_grant if {
	portcullis.decision == deny(["no rule allows this call"]) with input as call("support-bot", "github", "POST", "/repos/acme/app/issues")
}

test_null_agent_is_denied if {
	c := object.union(call("x", "github", "GET", "/repos/acme/app"), {"agent": null})
	portcullis.decision == deny(["unauthenticated agent"]) with input as c
}

test_unknown_agent_is_denied if {
	portcullis.decision == deny(["unknown agent"]) with input as call("rogue-bot", "github", "GET", "/repos/acme/app")
}

test_agent_outside_its_routes_is_denied if {
	portcullis.decision == deny(["agent not allowed on this route"]) with input as call("analytics-bot", "github", "GET", "/repos/acme/app")
}

test_unknown_route_is_denied if {
	portcullis.decision.allow == false with input as call("support-bot", "shell", "POST", "/exec")
}

# --- billing: charges up to 500, in New York business hours ---

test_charge_within_limit_in_hours if {
	c := with_body(call("support-bot", "billing", "POST", "/charges"), {"amount": 120, "currency": "usd"})
	portcullis.decision == {"allow": true, "reasons": ["billing: create charge"], "credential": "write"} with input as c
}

test_charge_at_limit if {
	c := with_body(call("support-bot", "billing", "POST", "/charges"), {"amount": 500})
	portcullis.decision.allow == true with input as c
}

test_charge_over_limit if {
	c := with_body(call("support-bot", "billing", "POST", "/charges"), {"amount": 501})
	portcullis.decision == deny(["body.amount over limit"]) with input as c
}

test_charge_without_amount if {
	portcullis.decision == deny(["body.amount missing or not a number"]) with input as call("support-bot", "billing", "POST", "/charges")
}

test_charge_at_1800_new_york if {
	c := object.union(
		with_body(call("support-bot", "billing", "POST", "/charges"), {"amount": 120}),
		{"time": "2026-11-23T23:00:00Z"},
	)
	portcullis.decision == deny(["outside business hours"]) with input as c
}

# Every veto is reported, in a stable order.
test_all_reasons_are_reported_sorted if {
	c := object.union(
		with_body(call("support-bot", "billing", "POST", "/charges"), {"amount": 9000}),
		{"time": "2026-11-21T17:00:00Z"},
	)
	portcullis.decision == deny(["body.amount over limit", "outside business hours"]) with input as c
}

test_reading_charges_is_also_hours_restricted if {
	c := object.union(call("support-bot", "billing", "GET", "/charges/ch_1"), {"time": "2026-11-22T17:00:00Z"})
	portcullis.decision == deny(["outside business hours"]) with input as c
}

# --- db: read-only SQL for analytics-bot ---

test_select_is_allowed if {
	c := with_body(call("analytics-bot", "db", "POST", "/query"), {"query": "select * from orders limit 10"})
	portcullis.decision == {"allow": true, "reasons": ["db: run query"]} with input as c
}

test_drop_is_denied if {
	c := with_body(call("analytics-bot", "db", "POST", "/query"), {"query": "SELECT 1; DROP TABLE orders"})
	portcullis.decision == deny(["sql query is not a single read-only select"]) with input as c
}

# --- files: reports only ---

test_report_read_is_allowed if {
	portcullis.decision == {"allow": true, "reasons": ["files: read reports"]} with input as call("analytics-bot", "files", "GET", "/reports/2026/q3.csv")
}

# The glob grant "/reports/**" alone would match this; the path rule vetoes it.
test_traversal_out_of_reports_is_denied if {
	portcullis.decision == deny(["path traversal"]) with input as call("analytics-bot", "files", "GET", "/reports/../secrets.txt")
}

test_file_outside_reports_is_denied if {
	portcullis.decision == deny(["path outside allowed prefix"]) with input as call("analytics-bot", "files", "GET", "/secrets.txt")
}

# --- MCP (route "everything", agent assistant-bot) ---

mcp_call(agent, m) := {
	"route": "everything",
	"agent": {"id": agent},
	"request": {"method": "POST", "path": "/", "query": {}, "headers": {}},
	"time": weekday_noon,
	"mcp": object.union({"kind": "request", "id": 1, "tool": null, "arguments": null, "uri": null, "name": null, "session": null, "protocol_version": "2025-11-25"}, m),
}

test_mcp_plumbing_allowed if {
	d := portcullis.decision with input as mcp_call("assistant-bot", {"method": "initialize"})
	d == {"allow": true, "reasons": ["mcp: protocol"]}
}

test_mcp_granted_tool_allowed_and_masked if {
	d := portcullis.decision with input as mcp_call("assistant-bot", {"method": "tools/call", "tool": "echo", "arguments": {"message": "hi"}})
	d == {"allow": true, "reasons": ["mcp: tool echo"], "mask": ["/arguments/message"]}
}

test_mcp_get_env_denied if {
	d := portcullis.decision with input as mcp_call("assistant-bot", {"method": "tools/call", "tool": "get-env", "arguments": {}})
	d == deny(["no rule allows this call"])
}

test_mcp_limit_vetoes if {
	d := portcullis.decision with input as mcp_call("assistant-bot", {"method": "tools/call", "tool": "get-sum", "arguments": {"a": 5000, "b": 1}})
	d == deny(["get-sum: a out of range"])
}

test_mcp_other_agent_denied if {
	d := portcullis.decision with input as mcp_call("support-bot", {"method": "tools/call", "tool": "echo", "arguments": {}})
	d.allow == false
	"agent not allowed on this route" in d.reasons
}

test_rest_grant_never_opens_an_mcp_route if {
	c := object.union(mcp_call("assistant-bot", {"method": "tools/call", "tool": "get-env", "arguments": {}}), {"route": "github", "request": {"method": "GET", "path": "/", "query": {}, "headers": {}}})
	d := portcullis.decision with input as c
	d.allow == false
}

# --- triage-bot: may read charges, never create one; on MCP only echo ---

test_triage_bot_reads_charges if {
	portcullis.decision == {"allow": true, "reasons": ["billing: read charges"], "credential": "read"} with input as call("triage-bot", "billing", "GET", "/charges/ch_1")
}

test_triage_bot_never_creates_a_charge if {
	c := with_body(call("triage-bot", "billing", "POST", "/charges"), {"amount": 10})
	portcullis.decision == deny(["agent not granted: billing: create charge"]) with input as c
}

test_triage_bot_echoes_but_gets_no_other_tool if {
	d := portcullis.decision with input as mcp_call("triage-bot", {"method": "tools/call", "tool": "echo", "arguments": {"message": "hi"}})
	d.allow
	e := portcullis.decision with input as mcp_call("triage-bot", {"method": "tools/call", "tool": "get-sum", "arguments": {"a": 1, "b": 2}})
	e.allow == false
	e.reasons == ["agent not granted tool: get-sum"]
}

# --- tickets: support-bot acting for alice may read tickets ---

# What the gateway passes for a token (identity.jwt) that says support-bot acts for alice.
on_behalf(user, method, path) := object.union(call("support-bot", "tickets", method, path), {"agent": {
	"id": "support-bot",
	"method": "jwt",
	"issuer": "https://idp.example",
	"subject": "support-bot",
	"client_id": "support-bot",
	"scopes": ["tickets:read"],
	"claims": {},
	"on_behalf_of": user,
}})

test_support_bot_acting_for_alice_may_read_tickets if {
	portcullis.decision == {"allow": true, "reasons": ["tickets: read"]} with input as on_behalf("alice", "GET", "/tickets/42")
}

test_support_bot_acting_for_bob_may_not if {
	portcullis.decision == deny(["agent not acting for a user allowed on this route"]) with input as on_behalf("bob", "GET", "/tickets/42")
}

test_support_bot_acting_for_nobody_may_not_read_tickets if {
	portcullis.decision == deny(["agent not acting for a user allowed on this route"]) with input as call("support-bot", "tickets", "GET", "/tickets/42")
}

test_support_bot_acting_for_alice_may_not_write_tickets if {
	portcullis.decision == deny(["no rule allows this call"]) with input as on_behalf("alice", "POST", "/tickets/42")
}
