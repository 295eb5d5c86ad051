# MCP grants: on routes of kind mcp, the only source of allow. A grant in
# data.portcullis.config.mcp names a route and what may be used on it:
#
#   "mcp": {"everything": {
#     "tools": ["echo", "get-sum"],          # tools/call by tool name
#     "prompts": ["simple-prompt"],          # prompts/get by prompt name
#     "resources": ["demo://resource/**"],   # resources/read by uri glob
#     "limits": [{"tool": "get-sum", "field": "a", "min": 0, "max": 1000}],
#     "mask": {"pay": ["/arguments/card_number"]}
#   }}
#
# Everything is judged, the protocol plumbing included: a route without a
# grant here gets nothing, not even initialize. The gateway sets input.mcp on
# MCP routes only (kind, method, id, tool, arguments, uri, name,
# protocol_version, session).
package portcullis.lib.mcp

import data.portcullis.config
import data.portcullis.lib.agents

# What every MCP session needs to start, stay alive and list what it may use.
# Listing is safe: the gateway filters each list down to what the policy
# would allow (docs/mcp.md, "Filtered lists").
plumbing := {
	"initialize",
	"notifications/initialized",
	"ping",
	"notifications/cancelled",
	"notifications/progress",
	"notifications/roots/list_changed",
	"tools/list",
	"prompts/list",
	"resources/list",
	"resources/templates/list",
}

# GET (the server's event stream), DELETE (end the session) and the client's
# answers to server requests (sampling, elicitation, roots).
session_kinds := {"stream", "terminate", "response"}

grant := config.mcp[input.route]

allow contains "mcp: protocol" if {
	grant
	input.mcp.method in plumbing
}

allow contains "mcp: session" if {
	grant
	input.mcp.kind in session_kinds
}

allow contains concat("", ["mcp: tool ", input.mcp.tool]) if {
	input.mcp.method == "tools/call"
	input.mcp.tool in grant.tools
	agents.may_use_tool(input.mcp.tool) # an agent's profile may narrow the tools (agents.rego)
}

allow contains concat("", ["mcp: prompt ", input.mcp.name]) if {
	input.mcp.method == "prompts/get"
	input.mcp.name in grant.prompts
}

allow contains "mcp: resource" if {
	input.mcp.method == "resources/read"
	some pattern in grant.resources
	glob.match(pattern, ["/"], input.mcp.uri)
}

# Argument limits: a number outside [min, max], or not a number at all, vetoes
# the call. When the gateway asks whether to show a tool in tools/list it
# passes "arguments": null, so limits never hide a tool, they only refuse
# calls that break them.
deny contains concat("", [limit.tool, ": ", limit.field, " out of range"]) if {
	some limit in grant.limits
	limited(limit)
	value := input.mcp.arguments[limit.field]
	is_number(value)
	not in_range(value, limit)
}

deny contains concat("", [limit.tool, ": ", limit.field, " must be a number"]) if {
	some limit in grant.limits
	limited(limit)
	not number_given(limit)
}

# A helper, not `not is_number(...)` inline: with the field missing, OPA would
# evaluate the argument to undefined and the veto would never fire.
number_given(limit) if is_number(input.mcp.arguments[limit.field])

limited(limit) if {
	input.mcp.method == "tools/call"
	input.mcp.tool == limit.tool
	is_object(input.mcp.arguments)
}

in_range(value, limit) if {
	value >= object.get(limit, "min", value)
	value <= object.get(limit, "max", value)
}

# JSON pointers the gateway erases from the audit record of this call.
default mask := []

mask := grant.mask[input.mcp.tool] if input.mcp.method == "tools/call"
