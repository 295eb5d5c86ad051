package portcullis.lib.agents_test

import data.portcullis.lib.agents

profiles := {
	"support-bot": {"routes": ["github", "billing"]},
	"broken-bot": {},
}

call(agent, route) := {"route": route, "agent": agent, "request": {"method": "GET", "path": "/"}}

test_listed_agent_on_listed_route if {
	count(agents.deny) == 0 with input as call({"id": "support-bot"}, "github")
		with data.portcullis.config.agents as profiles
}

test_null_agent if {
	agents.deny == {"unauthenticated agent"} with input as call(null, "github")
		with data.portcullis.config.agents as profiles
}

test_missing_agent if {
	agents.deny == {"unauthenticated agent"} with input as {"route": "github"}
		with data.portcullis.config.agents as profiles
}

test_agent_without_id if {
	agents.deny == {"unauthenticated agent"} with input as call({}, "github")
		with data.portcullis.config.agents as profiles
}

test_empty_id if {
	agents.deny == {"unauthenticated agent"} with input as call({"id": ""}, "github")
		with data.portcullis.config.agents as profiles
}

test_non_string_id if {
	agents.deny == {"unauthenticated agent"} with input as call({"id": 7}, "github")
		with data.portcullis.config.agents as profiles
}

test_unknown_agent if {
	agents.deny == {"unknown agent"} with input as call({"id": "rogue-bot"}, "github")
		with data.portcullis.config.agents as profiles
}

test_listed_agent_on_another_route if {
	agents.deny == {"agent not allowed on this route"} with input as call({"id": "support-bot"}, "db")
		with data.portcullis.config.agents as profiles
}

# A profile without a routes list grants nothing rather than everything.
test_profile_without_routes if {
	agents.deny == {"agent not allowed on this route"} with input as call({"id": "broken-bot"}, "github")
		with data.portcullis.config.agents as profiles
}

test_no_agents_configured if {
	agents.deny == {"unknown agent"} with input as call({"id": "support-bot"}, "github")
		with data.portcullis.config as {}
}

# --- Per-agent grants and tools ---

grants := [
	{"name": "tickets: read", "route": "tickets", "methods": ["GET"], "paths": ["/tickets/**"]},
	{"name": "tickets: refund", "route": "tickets", "methods": ["POST"], "paths": ["/tickets/*/refund"]},
]

limited_profiles := {
	"triage-bot": {"routes": ["tickets"], "grants": ["tickets: read"]},
	"ops-bot": {"routes": ["tickets"]},
	"idle-bot": {"routes": ["tickets"], "grants": []},
	"mcp-bot": {"routes": ["tools"], "tools": {"tools": ["echo"]}},
}

rest(agent, method, path) := {"route": "tickets", "agent": {"id": agent}, "request": {"method": method, "path": path}}

test_listed_grant_is_usable if {
	agents.may_use("tickets: read") with input as rest("triage-bot", "GET", "/tickets/1")
		with data.portcullis.config.agents as limited_profiles
	count(agents.deny) == 0 with input as rest("triage-bot", "GET", "/tickets/1")
		with data.portcullis.config.agents as limited_profiles with data.portcullis.config.routes as grants
}

test_unlisted_grant_is_vetoed_by_name if {
	agents.deny == {"agent not granted: tickets: refund"} with input as rest("triage-bot", "POST", "/tickets/1/refund")
		with data.portcullis.config.agents as limited_profiles with data.portcullis.config.routes as grants
	not agents.may_use("tickets: refund") with input as rest("triage-bot", "POST", "/tickets/1/refund")
		with data.portcullis.config.agents as limited_profiles
}

test_profile_without_grants_may_use_every_grant if {
	agents.may_use("tickets: refund") with input as rest("ops-bot", "POST", "/tickets/1/refund")
		with data.portcullis.config.agents as limited_profiles
	count(agents.deny) == 0 with input as rest("ops-bot", "POST", "/tickets/1/refund")
		with data.portcullis.config.agents as limited_profiles with data.portcullis.config.routes as grants
}

test_empty_grant_list_grants_nothing if {
	not agents.may_use("tickets: read") with input as rest("idle-bot", "GET", "/tickets/1")
		with data.portcullis.config.agents as limited_profiles
	agents.deny == {"agent not granted: tickets: read"} with input as rest("idle-bot", "GET", "/tickets/1")
		with data.portcullis.config.agents as limited_profiles with data.portcullis.config.routes as grants
}

tool_call(agent, tool) := {"route": "tools", "agent": {"id": agent}, "request": {"method": "POST", "path": "/"}, "mcp": {"method": "tools/call", "tool": tool}}

test_tools_narrowed_per_route if {
	agents.may_use_tool("echo") with input as tool_call("mcp-bot", "echo") with data.portcullis.config.agents as limited_profiles
	not agents.may_use_tool("delete-all") with input as tool_call("mcp-bot", "delete-all") with data.portcullis.config.agents as limited_profiles
	agents.deny == {"agent not granted tool: delete-all"} with input as tool_call("mcp-bot", "delete-all")
		with data.portcullis.config.agents as limited_profiles
}

test_tools_unlimited_without_a_list if {
	agents.may_use_tool("anything") with input as tool_call("ops-bot", "anything") with data.portcullis.config.agents as limited_profiles
}

# --- Acting on behalf of a user (input.agent.on_behalf_of) ---

delegating_profiles := {"support-bot": {"routes": ["tickets", "github"], "acts_for": {"tickets": ["alice"]}}}

for_user(user) := {"id": "support-bot", "method": "jwt", "on_behalf_of": user}

test_acting_for_a_listed_user if {
	count(agents.deny) == 0 with input as call(for_user("alice"), "tickets")
		with data.portcullis.config.agents as delegating_profiles
}

test_acting_for_another_user if {
	agents.deny == {"agent not acting for a user allowed on this route"} with input as call(for_user("bob"), "tickets")
		with data.portcullis.config.agents as delegating_profiles
}

test_acting_for_nobody if {
	agents.deny == {"agent not acting for a user allowed on this route"} with input as call(for_user(null), "tickets")
		with data.portcullis.config.agents as delegating_profiles
	agents.deny == {"agent not acting for a user allowed on this route"} with input as call({"id": "support-bot"}, "tickets")
		with data.portcullis.config.agents as delegating_profiles
}

test_acts_for_only_narrows_its_routes if {
	count(agents.deny) == 0 with input as call({"id": "support-bot"}, "github")
		with data.portcullis.config.agents as delegating_profiles
}
