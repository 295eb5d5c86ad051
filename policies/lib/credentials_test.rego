package portcullis.lib.credentials_test

import data.portcullis.lib.credentials

grants := [
	{"name": "crm: read", "route": "crm", "methods": ["GET", "HEAD"], "paths": ["/**"], "credential": "read"},
	{"name": "crm: update", "route": "crm", "methods": ["PATCH"], "paths": ["/contacts/*"], "credential": "write"},
	{"name": "crm: export", "route": "crm", "methods": ["GET"], "paths": ["/export"], "credential": "write"},
	{"name": "crm: ping", "route": "crm", "methods": ["GET"], "paths": ["/ping"]},
]

agents := {"crm-bot": {"routes": ["crm"]}}

call(method, path) := {"route": "crm", "agent": {"id": "crm-bot"}, "request": {"method": method, "path": path, "query": {}, "headers": {}}}

test_a_read_gets_the_read_credential if {
	credentials.field == {"credential": "read"} with input as call("GET", "/contacts/7")
		with data.portcullis.config.routes as grants
		with data.portcullis.config.agents as agents
}

test_a_write_gets_the_write_credential if {
	credentials.field == {"credential": "write"} with input as call("PATCH", "/contacts/7")
		with data.portcullis.config.routes as grants
		with data.portcullis.config.agents as agents
}

test_a_grant_without_a_label_leaves_the_default if {
	credentials.field == {} with input as call("HEAD", "/ping")
		with data.portcullis.config.routes as [grants[3]]
		with data.portcullis.config.agents as agents
}

test_two_grants_naming_different_credentials_deny if {
	credentials.deny == {"grants name different credentials: read, write"} with input as call("GET", "/export")
		with data.portcullis.config.routes as grants
		with data.portcullis.config.agents as agents
}

test_nothing_allowed_nothing_chosen if {
	credentials.field == {} with input as call("DELETE", "/contacts/7")
		with data.portcullis.config.routes as grants
		with data.portcullis.config.agents as agents
	count(credentials.deny) == 0 with input as call("DELETE", "/contacts/7")
		with data.portcullis.config.routes as grants
		with data.portcullis.config.agents as agents
}
