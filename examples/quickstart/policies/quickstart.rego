# The quickstart's policy: one route, "tools", in front of a demo tool API, and
# two agents. Deny by default; each `allow` rule below opens one thing.
# (The starter library in policies/ shows the same ideas, data-driven.)
package portcullis

default decision := {"allow": false, "reasons": ["no rule allows this call"]}

# A veto wins over any allow, so the agent is told why it was refused.
decision := {"allow": false, "reasons": sort(deny)} if {
	count(deny) > 0
} else := {"allow": true, "reasons": sort(allow)} if {
	count(allow) > 0
}

# "agent": null means the caller presented no key.
deny contains "unauthenticated agent" if not authenticated

# A helper, not `not is_string(input.agent.id)` inline: OPA evaluates a
# function's arguments before the `not`, so with "agent": null that line would
# be undefined rather than true, and the veto would never fire.
authenticated if is_string(input.agent.id)

# support-bot reads tickets: "/tickets" and anything under it.
allow contains "support-bot reads tickets" if {
	call("support-bot", "GET")
	under("/tickets")
}

# ... and opens tickets, with a known priority.
allow contains "support-bot opens a ticket" if {
	call("support-bot", "POST")
	input.request.path == "/tickets"
	input.request.body.priority in {"low", "normal", "high"}
}

# ... and refunds up to 100. The limit is a veto rather than a condition of
# the allow, so that the agent hears why ("over limit"), not just "no".
allow contains "support-bot refunds" if refund

deny contains "refund amount over limit" if {
	refund
	is_number(input.request.body.amount)
	input.request.body.amount > 100
}

# A missing, non-numeric or negative amount must not slip past the limit
# above, which is simply undefined (not true) when there is no number.
deny contains "refund amount must be a positive number" if {
	refund
	not refund_amount_valid
}

refund if {
	call("support-bot", "POST")
	input.request.path == "/refunds"
}

refund_amount_valid if {
	is_number(input.request.body.amount)
	input.request.body.amount > 0
}

# report-bot only reads reports.
allow contains "report-bot reads reports" if {
	call("report-bot", "GET")
	under("/reports")
}

call(agent, method) if {
	input.route == "tools"
	input.agent.id == agent
	input.request.method == method
}

# The path is the prefix itself or below it: "/tickets/7" but not "/ticketsx".
under(prefix) if input.request.path == prefix

under(prefix) if startswith(input.request.path, concat("", [prefix, "/"]))

# support-bot follows the ticket event stream (Server-Sent Events, streamed through).
allow contains "support-bot follows events" if {
	call("support-bot", "GET")
	input.request.path == "/events"
}

# A careless debug endpoint that echoes request headers, the upstream token
# included. Allowed here to show that Portcullis masks the token in the answer.
allow contains "support-bot reads debug headers" if {
	call("support-bot", "GET")
	input.request.path in {"/debug/headers", "/debug/encoded"}
}
