package portcullis_test

import data.portcullis

call(agent, method, path) := {
	"route": "tools",
	"agent": {"id": agent},
	"request": {"method": method, "path": path, "query": {}, "headers": {}},
	"time": "2026-11-23T14:03:00.000Z",
}

post(agent, path, body) := object.union(call(agent, "POST", path), {"request": {"body": body}})

allowed(reason) := {"allow": true, "reasons": [reason]}

denied(reason) := {"allow": false, "reasons": [reason]}

# --- Unauthenticated ---

test_null_agent if {
	c := object.union(call("x", "GET", "/tickets"), {"agent": null})
	portcullis.decision == denied("unauthenticated agent") with input as c
}

test_missing_agent if {
	portcullis.decision == denied("unauthenticated agent") with input as {"route": "tools", "request": {"method": "GET", "path": "/tickets"}}
}

test_empty_input if {
	portcullis.decision == denied("unauthenticated agent") with input as {}
}

# --- support-bot: tickets ---

test_support_bot_lists_tickets if {
	portcullis.decision == allowed("support-bot reads tickets") with input as call("support-bot", "GET", "/tickets")
}

test_support_bot_reads_a_ticket if {
	portcullis.decision == allowed("support-bot reads tickets") with input as call("support-bot", "GET", "/tickets/42/comments")
}

test_prefix_is_a_path_segment if {
	portcullis.decision == denied("no rule allows this call") with input as call("support-bot", "GET", "/ticketsx")
}

test_support_bot_opens_a_ticket if {
	every priority in ["low", "normal", "high"] {
		portcullis.decision == allowed("support-bot opens a ticket") with input as post("support-bot", "/tickets", {"title": "Printer on fire", "priority": priority})
	}
}

test_ticket_with_unknown_priority if {
	every body in [{"priority": "urgent"}, {"priority": "HIGH"}, {"title": "no priority"}, "priority=high"] {
		portcullis.decision == denied("no rule allows this call") with input as post("support-bot", "/tickets", body)
	}
}

test_ticket_without_body if {
	portcullis.decision == denied("no rule allows this call") with input as call("support-bot", "POST", "/tickets")
}

test_support_bot_cannot_delete_tickets if {
	portcullis.decision == denied("no rule allows this call") with input as call("support-bot", "DELETE", "/tickets/42")
}

# --- support-bot: refunds ---

test_refund_under_limit if {
	portcullis.decision == allowed("support-bot refunds") with input as post("support-bot", "/refunds", {"amount": 40})
}

test_refund_at_limit if {
	portcullis.decision == allowed("support-bot refunds") with input as post("support-bot", "/refunds", {"amount": 100})
}

test_refund_just_over_limit if {
	portcullis.decision == denied("refund amount over limit") with input as post("support-bot", "/refunds", {"amount": 100.01})
}

test_refund_far_over_limit if {
	portcullis.decision == denied("refund amount over limit") with input as post("support-bot", "/refunds", {"amount": 5000})
}

test_refund_amount_not_a_positive_number if {
	every body in [{}, {"amount": "50"}, {"amount": null}, {"amount": 0}, {"amount": -20}] {
		portcullis.decision == denied("refund amount must be a positive number") with input as post("support-bot", "/refunds", body)
	}
}

test_refund_without_body if {
	portcullis.decision == denied("refund amount must be a positive number") with input as call("support-bot", "POST", "/refunds")
}

# --- report-bot ---

test_report_bot_reads_reports if {
	portcullis.decision == allowed("report-bot reads reports") with input as call("report-bot", "GET", "/reports/2026-q3.csv")
}

test_report_bot_cannot_write_reports if {
	portcullis.decision == denied("no rule allows this call") with input as post("report-bot", "/reports/2026-q3.csv", {})
}

test_report_bot_cannot_read_tickets if {
	portcullis.decision == denied("no rule allows this call") with input as call("report-bot", "GET", "/tickets")
}

# The refund limit is support-bot's; for anyone else a refund is simply not granted.
test_report_bot_cannot_refund if {
	portcullis.decision == denied("no rule allows this call") with input as post("report-bot", "/refunds", {"amount": 500})
}

test_support_bot_cannot_read_reports if {
	portcullis.decision == denied("no rule allows this call") with input as call("support-bot", "GET", "/reports/2026-q3.csv")
}

# --- everything else ---

test_unknown_agent if {
	portcullis.decision == denied("no rule allows this call") with input as call("intruder-bot", "GET", "/tickets")
}

test_other_route if {
	c := object.union(call("support-bot", "GET", "/tickets"), {"route": "admin"})
	portcullis.decision == denied("no rule allows this call") with input as c
}

# --- Events stream and the debug endpoint (masking demo) ---

test_support_bot_follows_events if {
	portcullis.decision == allowed("support-bot follows events") with input as call("support-bot", "GET", "/events")
}

test_report_bot_cannot_follow_events if {
	portcullis.decision == denied("no rule allows this call") with input as call("report-bot", "GET", "/events")
}

test_debug_headers_read_only if {
	portcullis.decision == denied("no rule allows this call") with input as call("support-bot", "POST", "/debug/headers")
}
