# The benchmark's MCP rules (route bench-mcp), beside the REST ones in bench.rego: the
# protocol's plumbing, and the echo tool judged on its arguments as a real policy would: the
# message must be a string of bounded length that carries no private key. The decision also
# names an argument to mask in the audit record, so masking runs on every call.
package portcullis

plumbing := {"initialize", "notifications/initialized", "ping", "tools/list"}

decision := {"allow": true, "reasons": ["bench-bot speaks MCP"]} if {
	mcp_call
	input.mcp.method in plumbing
}

decision := {"allow": true, "reasons": ["bench-bot echoes a message"], "mask": ["/arguments/api_key"]} if {
	mcp_call
	input.mcp.method == "tools/call"
	input.mcp.tool == "echo"
	is_string(input.mcp.arguments.message)
	count(input.mcp.arguments.message) <= 4096
	not contains(input.mcp.arguments.message, "PRIVATE KEY")
}

# Ending a session (HTTP DELETE: kind terminate, no method), as the soak benchmark does.
decision := {"allow": true, "reasons": ["bench-bot ends its session"]} if {
	mcp_call
	input.mcp.kind == "terminate"
}

mcp_call if {
	input.route == "bench-mcp"
	input.agent.id == "bench-bot"
}
