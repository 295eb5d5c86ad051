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
