# Business hours: calls on the routes listed in
# data.portcullis.config.business_hours are allowed only on the listed days,
# from `start` (inclusive) to `end` (exclusive), in the configured IANA time
# zone. With "start": "08:00" and "end": "18:00", 17:59 is in and 18:00 is out.
# A window that crosses midnight is not supported: use two routes or two rules.
#
# The time judged is input.time, which the gateway stamps (RFC 3339) when the
# call arrives and also writes to the audit record; it is not taken from the
# agent. Reading it from input rather than calling time.now_ns() keeps the
# decision reproducible from the audit record alone and lets tests set it.
#
# time.parse_rfc3339_ns, time.weekday and time.clock are not part of OPA's Wasm
# runtime; the gateway supplies them as host builtins.
package portcullis.lib.hours

import data.portcullis.config

deny contains "request time missing or invalid" if {
	restricted
	not request_ns
}

deny contains "outside business hours" if {
	restricted
	request_ns
	not within_hours
}

restricted if input.route in config.business_hours.routes

# Undefined when input.time is absent or not RFC 3339, which the rule above
# turns into a deny with its own reason. The shape is checked before parsing
# because the gateway's host builtin throws on a bad value (an evaluation
# error: still a deny, but without the reason), where `opa test` would
# quietly return undefined; checking first makes both behave the same.
request_ns := time.parse_rfc3339_ns(input.time) if {
	is_string(input.time)
	regex.match(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`, input.time)
}

# Undefined, and so a deny, if the configuration is incomplete or malformed:
# missing "days" or a "start" that is not "HH:MM" closes the route rather
# than opening it. So does an unknown time zone: undefined in `opa test`, an
# evaluation error from the host builtin in the gateway, a deny either way.
within_hours if {
	hours := config.business_hours
	time.weekday([request_ns, hours.timezone]) in hours.days
	[hour, minute, _] := time.clock([request_ns, hours.timezone])
	now := (hour * 60) + minute
	minute_of_day(hours.start) <= now
	now < minute_of_day(hours.end)
}

# "08:30" -> 510.
minute_of_day(hhmm) := (to_number(parts[0]) * 60) + to_number(parts[1]) if {
	parts := split(hhmm, ":")
	count(parts) == 2
}
