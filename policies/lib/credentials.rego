# Least privilege: which of a route's credentials an allowed call gets.
#
# A route grant in data.portcullis.config.routes may name a credential label
# ("credential": "read"); the gateway route lists its credentials by the same
# labels (routes[].credentials: {read: crm-ro, write: crm-rw}). The decision then
# carries "credential": <label>, so a read gets the read-only credential and only
# a write the one that can write. A grant without a label leaves the choice to the
# route's default_credential.
package portcullis.lib.credentials

import data.portcullis.config
import data.portcullis.lib.routes

# The labels named by the grants that allow this call.
chosen contains grant.credential if {
	some grant in config.routes
	grant.name in routes.allow
	is_string(grant.credential)
}

# Two grants allowing one call with different credentials: refuse rather than guess.
deny contains concat("", ["grants name different credentials: ", concat(", ", sort(chosen))]) if count(chosen) > 1

# What the decision adds: {"credential": label} when one label was chosen, else nothing.
field := {"credential": label} if {
	count(chosen) == 1
	some label in chosen
} else := {}
