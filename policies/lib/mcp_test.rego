package portcullis.lib.mcp_test

import data.portcullis.lib.mcp

grants := {"srv": {
	"tools": ["echo", "sum"],
	"prompts": ["hello"],
	"resources": ["demo://static/**"],
	"limits": [{"tool": "sum", "field": "a", "min": 0, "max": 10}],
	"mask": {"echo": ["/arguments/message"]},
}}

mcp_call(route, m) := {"route": route, "agent": {"id": "a"}, "mcp": object.union({"kind": "request", "id": 1, "tool": null, "arguments": null, "uri": null, "name": null, "session": null, "protocol_version": "2025-11-25"}, m)}

tool(name, args) := mcp_call("srv", {"method": "tools/call", "tool": name, "arguments": args})

test_plumbing_allowed_on_a_granted_route if {
	mcp.allow == {"mcp: protocol"} with input as mcp_call("srv", {"method": "initialize"}) with data.portcullis.config.mcp as grants
	mcp.allow == {"mcp: protocol"} with input as mcp_call("srv", {"method": "tools/list"}) with data.portcullis.config.mcp as grants
	mcp.allow == {"mcp: session"} with input as mcp_call("srv", {"kind": "stream", "method": null}) with data.portcullis.config.mcp as grants
}

test_nothing_on_a_route_without_a_grant if {
	count(mcp.allow) == 0 with input as mcp_call("other", {"method": "initialize"}) with data.portcullis.config.mcp as grants
	count(mcp.allow) == 0 with input as object.union(tool("echo", {}), {"route": "other"}) with data.portcullis.config.mcp as grants
}

test_unknown_methods_are_not_plumbing if {
	count(mcp.allow) == 0 with input as mcp_call("srv", {"method": "logging/setLevel"}) with data.portcullis.config.mcp as grants
}

test_granted_tool_allowed_other_tool_not if {
	mcp.allow == {"mcp: tool echo"} with input as tool("echo", {"message": "x"}) with data.portcullis.config.mcp as grants
	count(mcp.allow) == 0 with input as tool("get-env", {}) with data.portcullis.config.mcp as grants
}

test_prompts_and_resources if {
	mcp.allow == {"mcp: prompt hello"} with input as mcp_call("srv", {"method": "prompts/get", "name": "hello"}) with data.portcullis.config.mcp as grants
	mcp.allow == {"mcp: resource"} with input as mcp_call("srv", {"method": "resources/read", "uri": "demo://static/a/b"}) with data.portcullis.config.mcp as grants
	count(mcp.allow) == 0 with input as mcp_call("srv", {"method": "resources/read", "uri": "file:///etc/passwd"}) with data.portcullis.config.mcp as grants
}

test_limits_veto_out_of_range_and_non_numbers if {
	count(mcp.deny) == 0 with input as tool("sum", {"a": 10}) with data.portcullis.config.mcp as grants
	mcp.deny == {"sum: a out of range"} with input as tool("sum", {"a": 11}) with data.portcullis.config.mcp as grants
	mcp.deny == {"sum: a out of range"} with input as tool("sum", {"a": -1}) with data.portcullis.config.mcp as grants
	mcp.deny == {"sum: a must be a number"} with input as tool("sum", {"a": "5"}) with data.portcullis.config.mcp as grants
	mcp.deny == {"sum: a must be a number"} with input as tool("sum", {}) with data.portcullis.config.mcp as grants
}

test_limits_do_not_hide_a_tool_from_lists if {
	# The gateway asks about visibility with arguments null.
	count(mcp.deny) == 0 with input as tool("sum", null) with data.portcullis.config.mcp as grants
}

test_mask_for_the_tool if {
	mcp.mask == ["/arguments/message"] with input as tool("echo", {"message": "x"}) with data.portcullis.config.mcp as grants
	mcp.mask == [] with input as tool("sum", {"a": 1}) with data.portcullis.config.mcp as grants
}
