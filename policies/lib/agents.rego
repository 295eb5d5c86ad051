# Who may use which route. data.portcullis.config.agents maps an agent id (as
# the gateway identified it from the caller's key) to the routes it may use.
#
# An allow list, not a deny list: a new agent can do nothing until someone adds
# it here, and an agent's reach is read off one entry.
#
# Reasons are fixed strings: the audit record already carries the agent id and
# the route, and echoing caller-controlled text into a message shown back to
# the agent buys nothing.
package portcullis.lib.agents

import data.portcullis.config

deny contains "unauthenticated agent" if not authenticated

deny contains "unknown agent" if {
	authenticated
	not config.agents[input.agent.id]
}

deny contains "agent not allowed on this route" if {
	config.agents[input.agent.id]
	not route_listed
}

# A helper rule rather than `not input.route in profile.routes` inline: the
# compiler evaluates the operands of `in` before the `not`, so a profile
# without a routes list would make that deny undefined, and the call allowed
# (see the note at the top of arguments.rego).
route_listed if input.route in config.agents[input.agent.id].routes

# The gateway passes "agent": null when the caller presented no key. Checking
# for a non-empty string id (rather than testing for null) also covers a
# missing agent, a missing id and any other shape.
authenticated if {
	is_string(input.agent.id)
	input.agent.id != ""
}
