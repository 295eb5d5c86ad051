# Who may use which route, and which grants on it. data.portcullis.config.agents
# maps an agent id (as the gateway identified it from the caller's key) to its
# profile:
#
#   "triage-bot": {
#     "routes": ["billing", "everything"],      # the routes it may use at all
#     "grants": ["billing: read charges"],      # optional: only these route grants
#     "tools": {"everything": ["echo"]},        # optional: only these tools, per MCP route
#     "acts_for": {"tickets": ["alice"]}        # optional: on these routes, only on behalf of these users
#   }
#
# Without "grants", every route grant on its routes applies to the agent; with
# it, only the grants it names (an empty list: none). "tools" does the same for
# the tools an MCP grant opens. So "triage-bot may read charges but never
# create one" is one line of data, in the same style as everything else.
#
# An allow list, not a deny list: a new agent can do nothing until someone adds
# it here, and an agent's reach is read off one entry.
#
# Reasons are fixed strings: the audit record already carries the agent id and
# the route, and echoing caller-controlled text into a message shown back to
# the agent buys nothing.
package portcullis.lib.agents

import data.portcullis.config
import data.portcullis.lib.match

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

profile := config.agents[input.agent.id]

# may_use(name) holds when the agent may use the route grant called name: every
# grant when its profile lists none, else only those it lists.
may_use(_) if not limited

may_use(name) if name in profile.grants

limited if profile.grants

# A call that some route grant matches, but none the agent may use: say which,
# rather than the bare "no rule allows this call".
deny contains concat("", ["agent not granted: ", grant.name]) if {
	limited
	not input.mcp
	some grant in config.routes
	match.call_matches(grant)
	not may_use(grant.name)
	not granted_match
}

granted_match if {
	some grant in config.routes
	match.call_matches(grant)
	may_use(grant.name)
}

# may_use_tool(tool) holds when the agent may call tool on this MCP route: every
# tool the route's grant opens when its profile lists none for the route, else
# only those it lists. Listing (tools/list) follows: the gateway hides the rest.
may_use_tool(_) if not tools_limited

may_use_tool(tool) if tool in profile.tools[input.route]

tools_limited if profile.tools[input.route]

deny contains concat("", ["agent not granted tool: ", input.mcp.tool]) if {
	tools_limited
	input.mcp.method == "tools/call"
	not may_use_tool(input.mcp.tool)
}

# acts_for narrows a route to calls the agent makes on behalf of the users it
# lists: input.agent.on_behalf_of, which the gateway reads from a token's
# act.sub (RFC 8693 token exchange) or the claim identity.jwt names. An agent
# acting for nobody (an agent key, a token without the claim) has no
# on_behalf_of, so it is denied on such a route too. "support-bot acting for
# alice may read tickets" is one line of data:
#
#   "support-bot": {"routes": ["tickets"], "acts_for": {"tickets": ["alice"]}}
deny contains "agent not acting for a user allowed on this route" if {
	profile.acts_for[input.route]
	not acting_for_listed_user
}

acting_for_listed_user if input.agent.on_behalf_of in profile.acts_for[input.route]
